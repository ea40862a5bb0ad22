"""Many bags in one command: each bag replayed into its own folder, in a local process pool or on Ray.

:func:`replay_many` replays every bag with :func:`robot_vision.replay.runner.replay` (one process per
bag, ``workers=1`` inside it) into ``OUT/<bag name>/`` and writes one aggregated report,
``OUT/aggregate.json`` and ``OUT/aggregate.html``: a row per bag, the totals and the slowest frames
of all bags. The bags run in a local :class:`~concurrent.futures.ProcessPoolExecutor` ('spawn') of
``jobs`` processes (OpenMP and BLAS single-threaded, see :mod:`robot_vision.replay.pool`, as are the
Ray tasks), or as Ray tasks (``ray_address``: 'auto' for the running cluster, 'local' for a
Ray instance started here, or a cluster address) when the optional ``ray`` package is installed.
On a cluster of several machines every node must see the bags and ``OUT`` at the same paths (a
shared file system), as each task reads its bag and writes its folder where it runs.
:func:`compare_many` compares two such runs bag by bag with :func:`~robot_vision.replay.compare.compare_runs`.
"""

from __future__ import annotations

import dataclasses
import html
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, TextIO

from robot_vision.errors import ConfigError, InputError, RobotVisionError
from robot_vision.processes import SINGLE_THREAD_ENV, single_threaded_children
from robot_vision.replay.report import save

#: Suffixes of the files of a rosbag2 (see is_bag).
BAG_SUFFIXES = ('.mcap', '.db3')
#: Slowest frames listed in the aggregated report.
WORST_FRAMES = 10


def is_bag(path: Path) -> bool:
    """True for a bare .mcap/.db3 file or a rosbag2 folder: with metadata.yaml, or without it, one .mcap/.db3 file.

    A folder holding several .mcap/.db3 files and no metadata.yaml is a folder of bags.
    """
    if path.is_file():
        return path.suffix in BAG_SUFFIXES
    return path.is_dir() and ((path / 'metadata.yaml').is_file()
                              or sum(1 for p in path.iterdir() if p.is_file() and p.suffix in BAG_SUFFIXES) == 1)


def find_bags(paths: Sequence[Path | str]) -> List[Path]:
    """The bags named by ``paths``: bags themselves, or folders holding bags (sorted, one level deep).

    Raises InputError for a path that does not exist or a folder without any bag.
    """
    bags: List[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise InputError(f'{path}: no such bag or folder')
        if is_bag(path):
            bags.append(path)
            continue
        found = sorted(p for p in path.iterdir() if is_bag(p)) if path.is_dir() else []
        if not found:
            raise InputError(f'{path}: not a rosbag2 (folder with metadata.yaml, .mcap or .db3 file) and holds none')
        bags.extend(found)
    return bags


def output_names(bags: Sequence[Path]) -> List[str]:
    """A distinct output folder name per bag: its stem, with the parent folder's name when stems repeat."""
    stems = [b.stem or b.name for b in bags]
    names = [s if stems.count(s) == 1 else f'{b.parent.name}_{s}' for s, b in zip(stems, bags)]
    return [n if names.count(n) == 1 else f'{n}_{k}' for k, n in enumerate(names)]


def replay_one(bag: str, out: str, pipeline_settings: Any, settings: Any, hints: Mapping[str, str]) -> Dict[str, Any]:
    """Replay one bag (in this process, without progress output) and return its row of the aggregated report."""
    from robot_vision.replay.runner import replay
    row: Dict[str, Any] = {'bag': bag, 'out': out}
    try:
        run = replay(bag, out, pipeline_settings, settings, topic_hints=hints, progress=None)
    except (RobotVisionError, OSError) as exc:
        return {**row, 'exit_code': 2 if isinstance(exc, ConfigError) else 1, 'error': str(exc), 'frames': 0,
                'expected': 0, 'wall_s': 0.0, 'recorded_s': 0.0, 'detections': 0, 'objects': 0, 'grasps': 0,
                'tracks': 0, 'diagnostics': 0, 'slowest': []}
    s = run.summary['run']
    slowest = sorted(range(len(run.timings)), key=lambda k: -run.timings[k]['frame'])[:WORST_FRAMES]
    return {**row, 'exit_code': run.exit_code, 'error': '; '.join(run.incomplete),
            'frames': s['frames_processed'], 'expected': s['frames_expected'], 'wall_s': s['wall_s'],
            'recorded_s': s['recorded_s'],
            'detections': sum(len(f['detections']) for f in run.frames),
            'objects': sum(len(f['objects']) for f in run.frames),
            'grasps': sum(f['grasps']['count'] for f in run.frames),
            'tracks': len({t['id'] for f in run.frames for t in f['tracks']}),
            'diagnostics': sum(d['count'] for d in run.diagnostics),
            'slowest': [{'index': k, 'stamp': run.frames[k]['stamp'], 'frame_ms': round(run.timings[k]['frame'], 2),
                         'objects': len(run.frames[k]['objects'])} for k in slowest]}


def _local(jobs_args: List[tuple], jobs: int, report: Any) -> List[Dict[str, Any]]:
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context('spawn')) as pool:
        with single_threaded_children():  # the executor starts its processes while tasks are submitted
            futures = [pool.submit(replay_one, *args) for args in jobs_args]
        for future in as_completed(futures):
            report(future.result())
        return [f.result() for f in futures]


def _ray(jobs_args: List[tuple], address: str, jobs: int, report: Any) -> List[Dict[str, Any]]:
    try:
        import ray
    except ImportError as exc:
        raise ConfigError('--ray needs the optional ray package (pip install "ray>=2"); without it, leave out --ray '
                          'to use the local process pool') from exc
    if not ray.is_initialized():
        if address == 'local':
            ray.init(num_cpus=jobs, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    env = {k: v for k, v in SINGLE_THREAD_ENV.items() if k not in os.environ}
    task = ray.remote(num_cpus=1, runtime_env={'env_vars': env})(replay_one)
    refs = [task.remote(*args) for args in jobs_args]
    order = {ref: k for k, ref in enumerate(refs)}
    rows: List[Optional[Dict[str, Any]]] = [None] * len(refs)
    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        rows[order[ready[0]]] = ray.get(ready[0])
        report(rows[order[ready[0]]])
    return rows


def replay_many(bags: Sequence[Path | str], out_root: Path | str, pipeline_settings: Any = None,
                settings: Any = None, topic_hints: Mapping[str, str] = (), jobs: int = 2,
                ray_address: Optional[str] = None, progress: Optional[TextIO] = sys.stderr) -> Dict[str, Any]:
    """Replay ``bags`` into ``out_root/<name>/`` and write the aggregated report; returns it (see module doc).

    ``settings`` (ReplaySettings) apply to every bag, with ``workers=1``. ``jobs``: bags replayed at
    once (local pool, or Ray CPUs of a local instance). ``progress``: a line per finished bag.
    """
    from robot_vision.pipeline import PipelineSettings
    from robot_vision.replay.runner import ReplaySettings
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f'--jobs: expected an integer >= 1, got {jobs!r}')
    bags = [Path(b) for b in bags]
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    settings = dataclasses.replace(settings or ReplaySettings(), workers=1)
    args = [(str(b), str(out_root / n), pipeline_settings or PipelineSettings(), settings, dict(topic_hints))
            for b, n in zip(bags, output_names(bags))]
    done = [0]

    def report(row: Dict[str, Any]) -> None:
        done[0] += 1
        if progress is not None:
            state = f'error: {row["error"]}' if row['exit_code'] else f'{row["frames"]} frames in {row["wall_s"]} s'
            print(f'[{done[0]}/{len(args)}] {row["bag"]}: {state}', file=progress, flush=True)

    started = time.perf_counter()
    rows = (_ray(args, ray_address, jobs, report) if ray_address else _local(args, jobs, report))
    wall = time.perf_counter() - started
    aggregate = aggregate_rows(rows, wall, 'ray' if ray_address else f'local pool of {jobs}')
    incomplete: List[str] = []
    save(out_root / 'aggregate.json', json.dumps(aggregate, indent=1) + '\n', incomplete)
    save(out_root / 'aggregate.html', render_aggregate(aggregate), incomplete)
    aggregate['incomplete'] = incomplete
    return aggregate


def aggregate_rows(rows: List[Dict[str, Any]], wall_s: float, engine: str) -> Dict[str, Any]:
    """The aggregated report: per-bag rows, totals and the slowest frames of all bags."""
    keys = ('frames', 'expected', 'detections', 'objects', 'grasps', 'tracks', 'diagnostics')
    totals: Dict[str, Any] = {k: sum(r[k] for r in rows) for k in keys}
    totals.update(bags=len(rows), failed=sum(1 for r in rows if r['exit_code']),
                  recorded_s=round(sum(r['recorded_s'] for r in rows), 3),
                  bag_wall_s=round(sum(r['wall_s'] for r in rows), 3), wall_s=round(wall_s, 3),
                  throughput_fps=round(totals['frames'] / wall_s, 3) if wall_s > 0 else None)
    worst = sorted(({'bag': r['bag'], **f} for r in rows for f in r['slowest']), key=lambda f: -f['frame_ms'])
    return {'engine': engine, 'totals': totals, 'worst_frames': worst[:WORST_FRAMES],
            'bags': [{k: v for k, v in r.items() if k != 'slowest'} for r in rows]}


def render_aggregate(aggregate: Dict[str, Any]) -> str:
    """A self-contained HTML page of the aggregated report."""
    esc = html.escape

    def table(rows: List[Dict[str, Any]]) -> str:
        if not rows:
            return '<p>none</p>'
        head = ''.join(f'<th>{esc(k)}</th>' for k in rows[0])
        body = ''.join('<tr>' + ''.join(f'<td>{esc(str(v))}</td>' for v in r.values()) + '</tr>' for r in rows)
        return f'<table><tr>{head}</tr>{body}</table>'
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>robot_vision replay of '
            f'{aggregate["totals"]["bags"]} bags</title><style>td,th{{border:1px solid #ccc;padding:2px 6px}}'
            f'table{{border-collapse:collapse}}</style></head><body><h1>Replay of {aggregate["totals"]["bags"]} bags '
            f'({esc(aggregate["engine"])})</h1><h2>Totals</h2>{table([aggregate["totals"]])}<h2>Bags</h2>'
            f'{table(aggregate["bags"])}<h2>Slowest frames</h2>{table(aggregate["worst_frames"])}</body></html>')


def compare_many(run_a: Path | str, run_b: Path | str, out_dir: Path | str) -> Dict[str, Any]:
    """Compare two runs of :func:`replay_many` bag by bag; writes compare_all.json and per-bag compare folders."""
    from robot_vision.replay.compare import compare_runs
    run_a, run_b, out_dir = Path(run_a), Path(run_b), Path(out_dir)
    names_a, names_b = (_bag_folders(r) for r in (run_a, run_b))
    common = sorted(set(names_a) & set(names_b))
    rows = []
    for name in common:
        c = compare_runs(run_a / name, run_b / name, out_dir / name)
        rows.append({'bag': name, 'frames_common': c['frames']['common'], 'only_a': c['frames']['only_a'],
                     'only_b': c['frames']['only_b'], 'detections_matched': c['detections']['matched'],
                     'detections_only_a': c['detections']['only_a'], 'detections_only_b': c['detections']['only_b'],
                     'frames_identical': c['detections']['frames_identical'],
                     'position_delta_mean_m': c['objects']['position_delta_mean_m']})
    result = {'run_a': str(run_a), 'run_b': str(run_b), 'bags': rows,
              'only_a': sorted(set(names_a) - set(names_b)), 'only_b': sorted(set(names_b) - set(names_a))}
    out_dir.mkdir(parents=True, exist_ok=True)
    incomplete: List[str] = []
    save(out_dir / 'compare_all.json', json.dumps(result, indent=1) + '\n', incomplete)
    result['incomplete'] = incomplete
    return result


def _bag_folders(run: Path) -> List[str]:
    """The bag output folders of a replay_many run (named in its aggregate.json)."""
    try:
        aggregate = json.loads((run / 'aggregate.json').read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f'{run}: not a replay of several bags (aggregate.json unreadable: {exc})') from exc
    names = [Path(row['out']).name for row in aggregate['bags']]
    return [name for name in names if (run / name / 'results.json').is_file()]


def is_multi_run(path: Path | str) -> bool:
    """True for the output folder of :func:`replay_many` (it holds aggregate.json)."""
    return (Path(path) / 'aggregate.json').is_file()
