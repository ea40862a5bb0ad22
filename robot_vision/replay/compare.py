"""Compare two replays of the same bag (e.g. two configs or models): matches, pose and latency deltas.

Reads each run folder's results.json and summary.json, pairs frames by stamp, matches
detections by box IoU and 3D objects by centre distance (optimal assignment), and writes
compare.json plus a self-contained compare.html.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from robot_vision.errors import InputError
from robot_vision.geometry import box_iou, matrix_from_quaternion, rotation_angle

#: Smallest IoU for two 2D detections to count as the same.
IOU_MATCH = 0.5
#: Largest centre distance (m) for two 3D objects to count as the same.
CENTRE_MATCH = 0.10


def _load(run_dir: Path) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    run_dir = Path(run_dir)
    files = [run_dir / 'results.json', run_dir / 'summary.json']
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise InputError(f'replay folder {run_dir}: expected results.json and summary.json '
                         f'(from robot-vision replay), missing {missing}')
    try:
        return tuple(json.loads(f.read_text(encoding='utf-8')) for f in files)  # type: ignore[return-value]
    except json.JSONDecodeError as exc:
        raise InputError(f'replay folder {run_dir}: unreadable JSON ({exc})') from exc


def _assign(cost: np.ndarray, valid: np.ndarray) -> List[Tuple[int, int]]:
    from scipy.optimize import linear_sum_assignment
    if cost.size == 0:
        return []
    big = np.where(valid, cost, 1e6)
    rows, cols = linear_sum_assignment(big)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if valid[r, c]]


def _rotation_delta_deg(qa: List[float], qb: List[float]) -> float:
    """Rotation between two object poses in degrees, up to the box's 180 degree symmetry about z."""
    ra, rb = matrix_from_quaternion(qa), matrix_from_quaternion(qb)
    flip = np.diag([-1.0, -1.0, 1.0])
    return math.degrees(min(rotation_angle(ra, rb), rotation_angle(ra @ flip, rb)))


def compare_frames(fa: Dict[str, Any], fb: Dict[str, Any]) -> Dict[str, Any]:
    """Match one frame's detections (IoU) and objects (centre distance) between two runs."""
    da, db = fa['detections'], fb['detections']
    iou = box_iou([d['xyxy'] for d in da], [d['xyxy'] for d in db]) if da and db else np.zeros((len(da), len(db)))
    det_pairs = _assign(-iou, iou >= IOU_MATCH)
    oa, ob = fa['objects'], fb['objects']
    pa = np.asarray([o['position'] for o in oa], np.float64).reshape(-1, 3)
    pb = np.asarray([o['position'] for o in ob], np.float64).reshape(-1, 3)
    dist = np.linalg.norm(pa[:, None] - pb[None], axis=2) if len(pa) and len(pb) else np.zeros((len(pa), len(pb)))
    obj_pairs = _assign(dist, dist <= CENTRE_MATCH)
    ba, bb = fa['grasps']['best'], fb['grasps']['best']
    return {
        'stamp': fa['stamp'],
        'detections': {'a': len(da), 'b': len(db), 'matched': len(det_pairs),
                       'only_a': len(da) - len(det_pairs), 'only_b': len(db) - len(det_pairs),
                       'mean_iou': round(float(np.mean([iou[i, j] for i, j in det_pairs])), 4) if det_pairs else None,
                       'class_changes': sum(1 for i, j in det_pairs if da[i]['class_id'] != db[j]['class_id'])},
        'objects': {'a': len(oa), 'b': len(ob), 'matched': len(obj_pairs),
                    'position_delta_m': [round(float(dist[i, j]), 5) for i, j in obj_pairs],
                    'rotation_delta_deg': [round(_rotation_delta_deg(oa[i]['quaternion'], ob[j]['quaternion']), 3)
                                           for i, j in obj_pairs],
                    'size_delta_m': [round(float(np.linalg.norm(np.subtract(oa[i]['size'], ob[j]['size']))), 5)
                                     for i, j in obj_pairs]},
        'grasps': {'a': fa['grasps']['count'], 'b': fb['grasps']['count'],
                   'best_score_a': ba['score'] if ba else None, 'best_score_b': bb['score'] if bb else None},
        'tracks': {'a': len(fa['tracks']), 'b': len(fb['tracks'])},
    }


def _mean(values: List[float]) -> Optional[float]:
    return round(float(np.mean(values)), 5) if values else None


def compare_runs(run_a: Path | str, run_b: Path | str, out_dir: Optional[Path | str] = None) -> Dict[str, Any]:
    """Compare two replay folders; writes compare.json and compare.html into ``out_dir`` (if given)."""
    res_a, sum_a = _load(Path(run_a))
    res_b, sum_b = _load(Path(run_b))
    notes = []
    if res_a.get('bag') != res_b.get('bag'):
        notes.append(f'the runs replayed different bags ({res_a.get("bag")} vs {res_b.get("bag")}): '
                     f'only frames with equal stamps are compared')
    frames_a = {f['stamp']: f for f in res_a['frames']}
    frames_b = {f['stamp']: f for f in res_b['frames']}
    common = sorted(set(frames_a) & set(frames_b))
    per_frame = [compare_frames(frames_a[s], frames_b[s]) for s in common]
    pos = [d for f in per_frame for d in f['objects']['position_delta_m']]
    rot = [d for f in per_frame for d in f['objects']['rotation_delta_deg']]
    latency = {}
    for stage in sorted(set(sum_a.get('latency_ms', {})) | set(sum_b.get('latency_ms', {}))):
        la, lb = sum_a['latency_ms'].get(stage, {}), sum_b['latency_ms'].get(stage, {})
        entry = {'a_p50': la.get('p50'), 'b_p50': lb.get('p50'), 'a_mean': la.get('mean'), 'b_mean': lb.get('mean')}
        entry['delta_p50'] = (round(entry['b_p50'] - entry['a_p50'], 3)
                              if entry['a_p50'] is not None and entry['b_p50'] is not None else None)
        latency[stage] = entry
    total = {k: sum(f['detections'][k] for f in per_frame) for k in ('a', 'b', 'matched', 'only_a', 'only_b')}
    result = {
        'run_a': str(run_a), 'run_b': str(run_b), 'bag': res_a.get('bag'), 'notes': notes,
        'frames': {'a': len(frames_a), 'b': len(frames_b), 'common': len(common),
                   'only_a': len(frames_a) - len(common), 'only_b': len(frames_b) - len(common)},
        'detections': {**total, 'class_changes': sum(f['detections']['class_changes'] for f in per_frame),
                       'frames_identical': sum(1 for f in per_frame if f['detections']['only_a'] == 0
                                               and f['detections']['only_b'] == 0)},
        'objects': {'a': sum(f['objects']['a'] for f in per_frame), 'b': sum(f['objects']['b'] for f in per_frame),
                    'matched': len(pos), 'position_delta_mean_m': _mean(pos),
                    'position_delta_max_m': round(max(pos), 5) if pos else None,
                    'rotation_delta_mean_deg': _mean(rot),
                    'rotation_delta_max_deg': round(max(rot), 3) if rot else None},
        'grasps': {'a': sum(f['grasps']['a'] for f in per_frame), 'b': sum(f['grasps']['b'] for f in per_frame)},
        'tracks': {'a_ids': len(sum_a.get('tracks', [])), 'b_ids': len(sum_b.get('tracks', []))},
        'latency_ms': latency,
        'throughput_fps': {'a': sum_a['run'].get('throughput_fps'), 'b': sum_b['run'].get('throughput_fps')},
        'per_frame': per_frame,
    }
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / 'compare.json').write_text(json.dumps(result, indent=1) + '\n', encoding='utf-8')
        (out / 'compare.html').write_text(render_compare_html(result), encoding='utf-8')
    return result


def render_compare_html(result: Dict[str, Any]) -> str:
    """A self-contained HTML page of a comparison (tables and one embedded plot)."""
    import html

    from robot_vision.replay.report import _CSS, _figure_png, _table
    esc = html.escape
    parts = [f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>robot_vision replay comparison</title>'
             f'<style>{_CSS}</style></head><body><h1>Replay comparison</h1>',
             _table([('A', result['run_a']), ('B', result['run_b']), ('bag', result['bag']),
                     ('frames A / B / common', f"{result['frames']['a']} / {result['frames']['b']} / "
                                               f"{result['frames']['common']}")])]
    for note in result['notes']:
        parts.append(f'<p class="bad">{esc(note)}</p>')
    d, o = result['detections'], result['objects']
    parts.append(f'<h2>Detections (IoU &ge; {IOU_MATCH:.2f})</h2>' + _table([
        ('A / B', f"{d['a']} / {d['b']}"), ('matched', d['matched']), ('only in A', d['only_a']),
        ('only in B', d['only_b']), ('class changes', d['class_changes']),
        ('frames with identical detections', d['frames_identical'])]))
    parts.append(f'<h2>3D objects (centres within {CENTRE_MATCH:.2f} m)</h2>' + _table([
        ('A / B', f"{o['a']} / {o['b']}"), ('matched', o['matched']),
        ('position delta mean / max (m)', f"{o['position_delta_mean_m']} / {o['position_delta_max_m']}"),
        ('rotation delta mean / max (deg)', f"{o['rotation_delta_mean_deg']} / {o['rotation_delta_max_deg']}")]))
    parts.append('<h2>Grasps and tracks</h2>' + _table([
        ('grasps A / B', f"{result['grasps']['a']} / {result['grasps']['b']}"),
        ('track ids A / B', f"{result['tracks']['a_ids']} / {result['tracks']['b_ids']}"),
        ('throughput A / B (frames/s)', f"{result['throughput_fps']['a']} / {result['throughput_fps']['b']}")]))
    parts.append('<h2>Latency (ms)</h2><table><tr><th>stage</th><th>A p50</th><th>B p50</th><th>B - A</th></tr>')
    for stage, e in result['latency_ms'].items():
        parts.append(f'<tr><td>{esc(stage)}</td><td>{e["a_p50"]}</td><td>{e["b_p50"]}</td><td>{e["delta_p50"]}</td></tr>')
    parts.append('</table>')
    if result['per_frame']:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(9, 3))
        t0 = result['per_frame'][0]['stamp']
        t = [f['stamp'] - t0 for f in result['per_frame']]
        ax.plot(t, [f['detections']['a'] for f in result['per_frame']], 'o-', label='detections A')
        ax.plot(t, [f['detections']['b'] for f in result['per_frame']], 's--', label='detections B')
        ax.plot(t, [f['detections']['matched'] for f in result['per_frame']], '^:', label='matched')
        ax.set_xlabel('time (s)')
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        parts.append(f'<h2>Per frame</h2><img class="plot" src="data:image/png;base64,{_figure_png(fig)}">')
    parts.append('</body></html>')
    return '\n'.join(parts)
