"""The replay report: results.json (deterministic), summary.json and a self-contained report.html.

Plots are drawn with matplotlib's Agg backend and embedded as base64 PNG, gallery frames as
base64 JPEG, so the HTML page needs no other file and no network.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from robot_vision import __version__

_KIND_COLOURS = {'bag': '#c0392b', 'input': '#c0392b', 'calibration': '#c0392b', 'stamps': '#d35400',
                 'dropped': '#d35400', 'sync': '#d35400', 'units': '#8e44ad', 'tf': '#2471a3',
                 'topics': '#2471a3', 'pipeline': '#7f8c8d', 'run': '#c0392b'}


def _stats(values: Sequence[float]) -> Dict[str, Optional[float]]:
    v = np.asarray(values, np.float64)
    if not v.size:
        return {'n': 0, 'mean': None, 'p50': None, 'p95': None, 'max': None}
    return {'n': int(v.size), 'mean': round(float(v.mean()), 3), 'p50': round(float(np.median(v)), 3),
            'p95': round(float(np.percentile(v, 95)), 3), 'max': round(float(v.max()), 3)}


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[:limit - 3].rstrip() + '...'


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def track_summary(frames: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Per-track timeline and pose jitter from the per-frame records (fixed-frame positions).

    ``jitter_std_m``: RMS over axes of the position's standard deviation while the track was
    reported; ``step_rms_m``: RMS of frame-to-frame position changes; ``yaw_std_deg``: circular
    standard deviation of the yaw. A static object's jitter is the pose noise of the pipeline.
    """
    seen: Dict[int, Dict[str, Any]] = {}
    for frame in frames:
        for track in frame['tracks']:
            entry = seen.setdefault(track['id'], {'id': track['id'], 'class_id': track['class_id'],
                                                  'stamps': [], 'positions': [], 'yaws': [], 'states': []})
            entry['stamps'].append(frame['stamp'])
            entry['positions'].append(track['position'])
            entry['yaws'].append(track['yaw'] or 0.0)
            entry['states'].append(track['state'])
            entry['hits'] = track['hits']
            entry['moving'] = track['moving']
    out = []
    for track_id in sorted(seen):
        e = seen[track_id]
        pos = np.asarray([[v if v is not None else np.nan for v in p] for p in e['positions']], np.float64)
        steps = np.linalg.norm(np.diff(pos, axis=0), axis=1) if len(pos) > 1 else np.zeros(0)
        yaws = np.asarray(e['yaws'], np.float64)
        resultant = float(np.hypot(np.cos(yaws).mean(), np.sin(yaws).mean())) if yaws.size else 1.0
        yaw_std = math.degrees(math.sqrt(max(-2.0 * math.log(max(resultant, 1e-12)), 0.0)))
        out.append({'id': track_id, 'class_id': e['class_id'], 'first_seen': e['stamps'][0],
                    'last_seen': e['stamps'][-1], 'frames': len(e['stamps']), 'hits': e.get('hits', 0),
                    'moving': bool(e.get('moving', False)),
                    'final_state': int(e['states'][-1]),
                    'mean_position': [round(float(x), 4) for x in np.nanmean(pos, axis=0)],
                    'jitter_std_m': (round(float(np.sqrt(np.nanmean(np.nanvar(pos, axis=0)))), 5)
                                     if len(pos) > 1 else None),
                    'step_rms_m': round(float(np.sqrt(np.mean(steps ** 2))), 5) if steps.size else None,
                    'yaw_std_deg': round(abs(yaw_std), 3) if len(pos) > 1 else None, 'stamps': e['stamps']})
    return out


def build_summary(run: Any, source_path: Path, roles: Dict[str, str], timings: List[Dict[str, float]],
                  wall_s: float, bag_span_s: float, expected: int, pipeline_settings: Any,
                  settings: Any, gallery_files: List[str]) -> Dict[str, Any]:
    """The numbers of the report (see docs/replay.md for every section)."""
    frames = run.frames
    stamps = np.asarray([f['stamp'] for f in frames], np.float64)
    t0 = float(stamps[0]) if stamps.size else 0.0
    period = float(np.median(np.diff(stamps))) if stamps.size > 1 else 0.0
    covered = float(stamps[-1] - stamps[0]) + period if stamps.size else 0.0
    classes = Counter(d['class'] for f in frames for d in f['detections'])
    scores = [s for f in frames for s in f['grasps']['scores'] if s is not None]
    best = [f['grasps']['best']['score'] if f['grasps']['best'] else None for f in frames]
    stages = sorted({k for t in timings for k in t})
    diag_counts = Counter()
    for d in run.diagnostics:
        diag_counts[d['kind']] += d['count']
    return {
        'tool': f'robot_vision {__version__} replay',
        'run': {
            'bag': str(source_path), 'topics': roles, 'frames_processed': len(frames),
            'frames_expected': int(expected), 'bag_span_s': round(bag_span_s, 3),
            'recorded_s': round(covered, 3), 'wall_s': round(wall_s, 3),
            'throughput_fps': round(len(frames) / wall_s, 3) if wall_s > 0 else None,
            'real_time_factor': round(covered / wall_s, 3) if wall_s > 0 and covered > 0 else None,
            'exit_code': run.exit_code, 'incomplete_outputs': list(run.incomplete),
        },
        'settings': {'replay': _jsonable(settings), 'pipeline': _jsonable(pipeline_settings)},
        'per_frame': {
            't': [round(float(s - t0), 4) for s in stamps],
            'detections': [len(f['detections']) for f in frames],
            'instances': [len(f['objects']) for f in frames],
            'grasps': [f['grasps']['count'] for f in frames],
            'tracks': [len(f['tracks']) for f in frames],
            'confirmed_tracks': [sum(1 for t in f['tracks'] if t['state'] == 1) for f in frames],
            'best_grasp_score': best,
        },
        'classes': dict(sorted(classes.items())),
        'tracks': track_summary(frames),
        'grasps': {
            'frames_with_grasps': sum(1 for f in frames if f['grasps']['count']),
            'total': int(sum(f['grasps']['count'] for f in frames)),
            'score': _stats(scores), 'best_score': _stats([b for b in best if b is not None]),
            'reasons': dict(Counter(_short(f['grasps']['reason']) for f in frames)),
        },
        'latency_ms': {stage: _stats([t[stage] for t in timings if stage in t]) for stage in stages},
        'gallery': gallery_files,
        'diagnostics': run.diagnostics,
        'diagnostic_counts': dict(sorted(diag_counts.items())),
    }


# ----------------------------------------------------------------------------- plots
def _figure_png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=90, bbox_inches='tight')
    import matplotlib.pyplot as plt
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode('ascii')


def _plots(summary: Dict[str, Any], timings: List[Dict[str, float]]) -> List[Tuple[str, str]]:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    plots = []
    per = summary['per_frame']
    t = per['t']
    fig, ax = plt.subplots(figsize=(9, 3.2))
    for key, style in (('detections', 'o-'), ('instances', 's--'), ('grasps', '^-'), ('confirmed_tracks', 'd:')):
        ax.plot(t, per[key], style, label=key.replace('_', ' '), drawstyle='steps-post' if len(t) > 30 else None)
    ax.set_xlabel('time since first frame (s)')
    ax.set_ylabel('count per frame')
    ax.grid(alpha=0.3)
    ax.legend(loc='upper right', fontsize=8)
    plots.append(('Detections, instances, grasps and confirmed tracks per frame', _figure_png(fig)))

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    classes = summary['classes']
    axes[0].bar(list(classes) or ['(none)'], list(classes.values()) or [0], color='#2e86c1')
    axes[0].set_title('detections per class', fontsize=10)
    axes[0].tick_params(axis='x', rotation=30, labelsize=8)
    best = [b if b is not None else np.nan for b in per['best_grasp_score']]
    axes[1].plot(t, best, 'o-', color='#28b463', label='best grasp score')
    if not best or all(np.isnan(best)):
        axes[1].text(0.5, 0.5, 'no grasps in this run\n(see the reasons in the Grasps table)', ha='center',
                     va='center', transform=axes[1].transAxes, fontsize=9)
    axes[1].set_xlabel('time (s)')
    axes[1].set_title('best grasp score per frame', fontsize=10)
    axes[1].grid(alpha=0.3)
    plots.append(('Classes and grasp scores', _figure_png(fig)))

    tracks = summary['tracks']
    fig, axes = plt.subplots(1, 2, figsize=(9, max(2.6, 0.35 * len(tracks) + 1.2)))
    stamp0 = summary.get('_stamp0', 0.0)
    for row, track in enumerate(tracks):
        xs = [s - stamp0 for s in track['stamps']]
        axes[0].plot(xs, [row] * len(xs), 'o-', lw=4, ms=5)
    axes[0].set_yticks(range(len(tracks)), [f"#{tr['id']}" for tr in tracks])
    axes[0].set_xlabel('time (s)')
    axes[0].set_title('track timelines', fontsize=10)
    axes[0].grid(alpha=0.3)
    axes[1].barh(range(len(tracks)), [(tr['jitter_std_m'] or 0.0) * 1000 for tr in tracks], color='#af601a')
    if tracks and all(tr['jitter_std_m'] is None for tr in tracks):
        axes[1].text(0.5, 0.5, 'every track was seen once:\nno jitter to measure', ha='center', va='center',
                     transform=axes[1].transAxes, fontsize=9)
    axes[1].set_yticks(range(len(tracks)), [f"#{tr['id']}" for tr in tracks])
    axes[1].set_xlabel('position jitter std (mm)')
    axes[1].set_title('pose jitter per track', fontsize=10)
    plots.append(('Track timelines and pose jitter', _figure_png(fig)))

    stages = [s for s in summary['latency_ms'] if summary['latency_ms'][s]['n']]
    if stages:
        cols = min(4, len(stages))
        rows = int(math.ceil(len(stages) / cols))
        fig, axes = plt.subplots(rows, cols, figsize=(9, 2.2 * rows), squeeze=False)
        for k, stage in enumerate(stages):
            ax = axes[k // cols][k % cols]
            values = [tm[stage] for tm in timings if stage in tm]
            ax.hist(values, bins=min(20, max(3, len(values))), color='#5d6d7e')
            ax.set_title(f'{stage}: p50 {np.median(values):.1f} ms', fontsize=9)
            ax.tick_params(labelsize=7)
        for k in range(len(stages), rows * cols):
            axes[k // cols][k % cols].axis('off')
        fig.tight_layout()
        plots.append(('Per-stage latency histograms (ms)', _figure_png(fig)))
    return plots


# ----------------------------------------------------------------------------- html
_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px;margin-bottom:4px} h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px} td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f4f6f7} .kind{color:#fff;border-radius:3px;padding:1px 6px;font-size:12px}
.gallery{display:flex;flex-wrap:wrap;gap:10px} .gallery figure{margin:0;width:380px}
.gallery img{width:380px;border:1px solid #ccc} figcaption{font-size:12px;color:#555}
.ok{color:#1e8449} .bad{color:#c0392b} img.plot{max-width:100%}
"""


def _mm(value: Optional[float]) -> str:
    return 'n/a' if value is None else f'{value * 1000:.1f}'


def _table(rows: List[Tuple[str, Any]]) -> str:
    def text(value: Any) -> str:
        return html.escape('n/a' if value is None else str(value).replace('None', 'n/a'))
    return '<table>' + ''.join(f'<tr><th>{html.escape(str(k))}</th><td>{text(v)}</td></tr>'
                               for k, v in rows) + '</table>'


def render_html(summary: Dict[str, Any], plots: List[Tuple[str, str]],
                gallery: List[Tuple[str, str, bytes]]) -> str:
    """The report page; ``gallery`` holds (file name, caption, JPEG bytes)."""
    run = summary['run']
    esc = html.escape
    status = ('<span class="ok">OK</span>' if run['exit_code'] == 0 else
              f'<span class="bad">incomplete outputs: {esc("; ".join(run["incomplete_outputs"]))}</span>'
              if run.get('incomplete_outputs') else '<span class="bad">no frame could be processed</span>')
    parts = [f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>robot_vision replay report</title>'
             f'<style>{_CSS}</style></head><body>',
             f'<h1>robot_vision replay report</h1><p>{esc(summary["tool"])} &middot; status: {status}</p>',
             '<h2>Run</h2>',
             _table([('bag', run['bag'])] + [(f'topic: {k}', v) for k, v in sorted(run['topics'].items())] + [
                 ('frames processed / expected', f"{run['frames_processed']} / {run['frames_expected']}"),
                 ('recorded duration (s)', run['recorded_s']), ('replay wall time (s)', run['wall_s']),
                 ('throughput (frames/s)', run['throughput_fps']),
                 ('real-time factor', run['real_time_factor'])])]
    parts.append('<h2>Diagnostics</h2>')
    if summary['diagnostics']:
        parts.append('<table><tr><th>kind</th><th>count</th><th>first stamp</th><th>message</th></tr>')
        for d in summary['diagnostics']:
            colour = _KIND_COLOURS.get(d['kind'], '#555')
            parts.append(f'<tr><td><span class="kind" style="background:{colour}">{esc(d["kind"])}</span></td>'
                         f'<td>{d["count"]}</td><td>{"" if d["stamp"] is None else d["stamp"]}</td>'
                         f'<td>{esc(d["message"])}</td></tr>')
        parts.append('</table>')
    else:
        parts.append('<p class="ok">none: units plausible, every frame paired, no gaps, stamps in order.</p>')
    for title, png in plots:
        parts.append(f'<h2>{esc(title)}</h2><img class="plot" alt="{esc(title)}" src="data:image/png;base64,{png}">')
    parts.append('<h2>Tracks</h2>')
    if summary['tracks']:
        parts.append('<table><tr><th>track</th><th>class</th><th>frames</th><th>hits</th><th>first (s)</th>'
                     '<th>last (s)</th><th>mean position (m, fixed frame)</th><th>jitter std (mm)</th>'
                     '<th>step rms (mm)</th><th>yaw std (deg)</th><th>moving</th></tr>')
        stamp0 = summary.get('_stamp0', 0.0)
        for tr in summary['tracks']:
            parts.append(f'<tr><td>#{tr["id"]}</td><td>{tr["class_id"]}</td><td>{tr["frames"]}</td>'
                         f'<td>{tr["hits"]}</td><td>{tr["first_seen"] - stamp0:.3f}</td>'
                         f'<td>{tr["last_seen"] - stamp0:.3f}</td><td>{tr["mean_position"]}</td>'
                         f'<td>{_mm(tr["jitter_std_m"])}</td><td>{_mm(tr["step_rms_m"])}</td>'
                         f'<td>{"n/a" if tr["yaw_std_deg"] is None else round(tr["yaw_std_deg"], 1)}</td>'
                         f'<td>{tr["moving"]}</td></tr>')
        parts.append('</table>')
    else:
        parts.append('<p>no tracks</p>')
    g = summary['grasps']
    parts.append('<h2>Grasps</h2>' + _table([
        ('frames with grasps', g['frames_with_grasps']), ('grasps in total', g['total']),
        ('score mean / p50 / max', f"{g['score']['mean']} / {g['score']['p50']} / {g['score']['max']}"),
        ('best score mean', g['best_score']['mean']),
        ('reasons', ', '.join(f'{k}: {v}' for k, v in g['reasons'].items()))]))
    parts.append('<h2>Latency per stage (ms)</h2><table><tr><th>stage</th><th>n</th><th>mean</th><th>p50</th>'
                 '<th>p95</th><th>max</th></tr>')
    for stage, s in summary['latency_ms'].items():
        parts.append(f'<tr><td>{esc(stage)}</td><td>{s["n"]}</td><td>{s["mean"]}</td><td>{s["p50"]}</td>'
                     f'<td>{s["p95"]}</td><td>{s["max"]}</td></tr>')
    parts.append('</table>')
    parts.append('<h2>Gallery</h2><p>masks, 2D boxes with class and score, projected 3D boxes, gripper '
                 'outlines (best in green) and track ids</p><div class="gallery">')
    for name, caption, data in gallery:
        parts.append(f'<figure><img alt="{esc(name)}" src="data:image/jpeg;base64,'
                     f'{base64.b64encode(data).decode("ascii")}"><figcaption>{esc(caption)}</figcaption></figure>')
    parts.append('</div></body></html>')
    return '\n'.join(parts)


def write_outputs(run: Any, source_path: Path, roles: Dict[str, str], timings: List[Dict[str, float]],
                  gallery: List[Tuple[int, float, np.ndarray]], wall_s: float, bag_span_s: float, expected: int,
                  pipeline_settings: Any, settings: Any) -> Dict[str, Any]:
    """Write results.json, summary.json, the gallery and report.html into ``run.out_dir``; return the summary.

    Each file is written whole or not at all (see :func:`save`); one that cannot be written (disk
    full, I/O error) is named in ``run.incomplete`` and the others are still written.
    """
    import cv2
    out = Path(run.out_dir)
    results = {'bag': Path(source_path).name, 'topics': roles, 'frames': run.frames}
    save(out / 'results.json', json.dumps(results, sort_keys=True, indent=1) + '\n', run.incomplete)
    entries: List[Tuple[str, str, bytes]] = []
    try:
        if gallery:
            (out / 'gallery').mkdir(exist_ok=True)
    except OSError as exc:
        run.incomplete.append(f'gallery: not written: {exc.strerror or exc}')
        gallery = []
    t0 = run.frames[0]['stamp'] if run.frames else 0.0
    for index, stamp, image in gallery:
        ok, jpeg = cv2.imencode('.jpg', np.ascontiguousarray(image[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 85])
        if not ok:
            continue
        name = f'frame_{index:05d}.jpg'
        if not save(out / 'gallery' / name, jpeg.tobytes(), run.incomplete):
            continue
        frame = run.frames[index]
        caption = (f'frame {index} at t = {stamp - t0:.3f} s: {len(frame["detections"])} detections, '
                   f'{len(frame["objects"])} instances, {frame["grasps"]["count"]} grasps, '
                   f'{len(frame["tracks"])} tracks')
        entries.append((name, caption, jpeg.tobytes()))
    summary = build_summary(run, source_path, roles, timings, wall_s, bag_span_s, expected, pipeline_settings,
                            settings, [f'gallery/{name}' for name, _, _ in entries])
    save(out / 'summary.json', json.dumps(summary, indent=1, default=str) + '\n', run.incomplete)
    summary['_stamp0'] = t0
    plots = _plots(summary, timings) if run.frames else []
    save(out / 'report.html', render_html(summary, plots, entries), run.incomplete)
    summary.pop('_stamp0')
    return summary


def save(path: Path, data: str | bytes, incomplete: List[str]) -> bool:
    """Write ``data`` to ``path`` whole (through a temporary file renamed over it) or not at all.

    On an OSError (disk full, I/O error) the temporary file is removed, ``path`` is left as it was,
    the reason is appended to ``incomplete`` and False returned.
    """
    partial = path.with_name(path.name + '.partial')
    try:
        with open(partial, 'wb') as stream:
            stream.write(data.encode('utf-8') if isinstance(data, str) else data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(partial, path)
        return True
    except OSError as exc:
        partial.unlink(missing_ok=True)
        incomplete.append(f'{path.parent.name + "/" if path.parent.name == "gallery" else ""}{path.name}: '
                          f'not written: {exc.strerror or exc}')
        return False
