"""The ``replay``, ``compare``, ``demo`` and ``play`` sub-commands of ``robot-vision``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional

from robot_vision.datasets import BUNDLED_DATA
from robot_vision.errors import ConfigError, InputError, RobotVisionError
from robot_vision.replay.pool import default_workers

#: The bundled real-data bag (3 Kinect frames from PCL's test data; see robot_vision/data/NOTICE).
DEMO_BAG = BUNDLED_DATA / 'demo_rgbd.mcap'


def _parse_topics(items: Optional[List[str]]) -> Dict[str, str]:
    topics: Dict[str, str] = {}
    for item in items or []:
        role, sep, topic = item.partition('=')
        if not sep or not topic:
            raise ConfigError(f'--topics: expected ROLE=TOPIC (roles color, depth, camera_info, tf, tf_static), '
                              f'got {item!r}')
        topics[role.strip()] = topic.strip()
    return topics


def _replay_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--config', help='YAML file with a robot_vision section (e.g. config/robot_vision.yaml)')
    parser.add_argument('--topics', nargs='+', metavar='ROLE=TOPIC',
                        help='override auto-detected input topics, e.g. color=/cam/color/image_raw '
                             'depth=/cam/depth/image_raw camera_info=/cam/color/camera_info')
    parser.add_argument('--slop', type=float, default=None,
                        help='largest colour/depth stamp difference in seconds (default: the config\'s '
                             'sync_slop_s, else 0.03)')
    parser.add_argument('--depth-scale', type=float, default=None,
                        help='metres per depth unit, overriding the encoding (16UC1: 0.001, 32FC1: 1)')
    parser.add_argument('--max-frames', type=int, default=0, help='stop after N frames (0: all)')
    parser.add_argument('--prefix', default='/robot_vision', help='namespace of the result topics in the output bag')
    parser.add_argument('--gallery', type=int, default=8, help='annotated frames in the report (default 8)')
    parser.add_argument('--no-bag', action='store_true', help='do not write the output bag')
    parser.add_argument('--overlays', action='store_true',
                        help='also write the annotated image of every frame (detections_overlay) into the output bag')
    parser.add_argument('--clouds', action='store_true',
                        help="also write every frame's object point cloud (object_points) into the output bag")
    parser.add_argument('--compress', action='store_true',
                        help='zstd-compress the output bag (about 3x smaller; about 9 ms of CPU per 640x480 frame)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace a previous replay\'s files in --out (only those files)')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the replay, compare, demo and play sub-commands to the ``robot-vision`` parser."""
    p = subparsers.add_parser('replay', help='run the pipeline over a rosbag2 and write a result bag and report',
                              description='Replay a rosbag2 (mcap or sqlite3) through the perception pipeline, '
                                          'without a ROS graph. Writes OUT/bag (inputs + result topics), '
                                          'OUT/results.json, OUT/summary.json and OUT/report.html.')
    p.add_argument('bag', nargs='+', help='rosbag2 folder, .mcap or .db3 file; several, or a folder of bags, '
                                          'replay each into OUT/<bag name> with one aggregated report')
    p.add_argument('--out', help='output folder (default: artifacts/replay/<bag name>, for several bags '
                                 'artifacts/replay/bags)')
    p.add_argument('--workers', type=int, default=None,
                   help=f'processes finding the objects of one bag\'s frames in parallel (default '
                        f'min(2, cores) = {default_workers()}; 1: all in this process); results are the same')
    p.add_argument('--jobs', type=int, default=None,
                   help=f'several bags: bags replayed at once (default {default_workers()})')
    p.add_argument('--ray', metavar='ADDRESS',
                   help="several bags: run them as Ray tasks: 'auto' (the running cluster), 'local' (start a "
                        "Ray instance here) or a cluster address (needs the optional ray package)")
    _replay_args(p)
    p.set_defaults(handler=cmd_replay)

    p = subparsers.add_parser('compare', help='compare two replays of the same bag',
                              description='Match detections and objects of two replay folders frame by frame '
                                          'and report pose and latency differences.')
    p.add_argument('run_a', help='first replay folder (from robot-vision replay --out)')
    p.add_argument('run_b', help='second replay folder')
    p.add_argument('--out', help='folder for compare.json and compare.html (default: RUN_B/compare)')
    p.set_defaults(handler=cmd_compare)

    p = subparsers.add_parser('demo', help='replay the bundled real RGB-D bag and print where the report is',
                              description=f'Replay {DEMO_BAG.name} (real Kinect frames) into artifacts/demo/.')
    p.add_argument('--out', default='artifacts/demo', help='output folder (default: artifacts/demo)')
    p.add_argument('--config', help='YAML file with a robot_vision section')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    p.set_defaults(handler=cmd_demo)

    p = subparsers.add_parser('play', help='publish a bag\'s topics with their recorded timing (needs rclpy)',
                              description='Publish every topic of a rosbag2 at its recorded timing, with /clock '
                                          'and a latched /tf_static, for testing the nodes on recorded data.')
    p.add_argument('bag', nargs='?', default='demo',
                   help=f"rosbag2 folder, .mcap or .db3 file; 'demo' (default): the bundled {DEMO_BAG.name}")
    p.add_argument('--rate', type=float, default=1.0, help='playback speed factor (default 1.0)')
    p.add_argument('--loop', action='store_true', help='start again at the end')
    p.add_argument('--topics', nargs='+', metavar='TOPIC', help='publish only these topics')
    p.add_argument('--no-clock', action='store_true', help='do not publish /clock')
    p.add_argument('--start-delay', type=float, default=10.0,
                   help='wait up to this many seconds for every topic to have steady subscribers before the '
                        'first message (default 10; 0: start at once)')
    p.set_defaults(handler=cmd_play)


def _settings(config: Optional[str], args: argparse.Namespace, overwrite: bool) -> tuple:
    """(PipelineSettings, ReplaySettings, topic hints) from the config file and the replay options."""
    from robot_vision.replay.runner import ReplaySettings, load_config
    from robot_vision.ros.topics import image_topic
    pipeline_settings, node = load_config(config)
    slop = getattr(args, 'slop', None)
    if slop is None:
        slop = float(node.get('sync_slop_s', ReplaySettings.slop))
    depth_scale = getattr(args, 'depth_scale', None)
    if depth_scale is None and float(node.get('depth_scale', 0.0) or 0.0) > 0:
        depth_scale = float(node['depth_scale'])
    settings = ReplaySettings(slop=slop, queue_size=int(node.get('sync_queue_size', ReplaySettings.queue_size)),
                              topics=_parse_topics(getattr(args, 'topics', None)), depth_scale=depth_scale,
                              prefix=getattr(args, 'prefix', '/robot_vision'),
                              max_frames=getattr(args, 'max_frames', 0), gallery_size=getattr(args, 'gallery', 8),
                              write_bag=not getattr(args, 'no_bag', False), overwrite=overwrite,
                              workers=_workers(getattr(args, 'workers', 1)),  # demo (no --workers): in-process
                              overlays=getattr(args, 'overlays', False), clouds=getattr(args, 'clouds', False),
                              compress=getattr(args, 'compress', False))
    hints = {role: node[f'{role}_topic'] for role in ('color', 'depth', 'camera_info') if node.get(f'{role}_topic')}
    for role in ('color', 'depth'):  # the node's configured image transport names the sub-topic
        if role in hints and node.get(f'{role}_transport'):
            hints[role] = image_topic(hints[role], node[f'{role}_transport'])
    return pipeline_settings, settings, hints


def _workers(value: Optional[int]) -> int:
    if value is None:
        return default_workers()
    if value < 1:
        raise ConfigError(f'--workers: expected an integer >= 1, got {value}')
    return value


def _run_replay(bag: Path, out: Path, config: Optional[str], args: argparse.Namespace, overwrite: bool) -> int:
    from robot_vision.replay.runner import replay
    pipeline_settings, settings, hints = _settings(config, args, overwrite)
    run = replay(bag, out, pipeline_settings, settings, topic_hints=hints,
                 progress=None if args.quiet else sys.stderr)
    s = run.summary['run']
    print(f'processed {s["frames_processed"]} of {s["frames_expected"]} frames in {s["wall_s"]:.2f} s '
          f'({s["throughput_fps"]} frames/s, real-time factor {s["real_time_factor"]})')
    for d in run.diagnostics:
        print(f'  [{d["kind"]}] {d["message"]}' + (f' (x{d["count"]})' if d['count'] > 1 else ''), file=sys.stderr)
    if run.bag_path is not None:
        print(f'result bag: {run.bag_path}')
    if run.report_path.is_file():
        print(f'report: {run.report_path.resolve()}')
    for item in run.incomplete:
        print(f'error: output incomplete: {item}', file=sys.stderr)
    if not run.frames:
        print('error: no frame could be processed (see the diagnostics above)', file=sys.stderr)
    return run.exit_code


def _guard(fn):
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except ConfigError as exc:
            print(f'error: {exc}', file=sys.stderr)
            return 2
        except InputError as exc:
            print(f'error: {exc}', file=sys.stderr)
            return 1
        except RobotVisionError as exc:  # a model that cannot be loaded: configuration
            print(f'error: {exc}', file=sys.stderr)
            return 2
        except OSError as exc:  # the file system, e.g. a disk that filled before the outputs existed
            print(f'error: {exc.filename or ""}{": " if exc.filename else ""}{exc.strerror or exc}', file=sys.stderr)
            return 3
    wrapper.__doc__ = fn.__doc__
    return wrapper


@_guard
def cmd_replay(args: argparse.Namespace) -> int:
    """Handle ``robot-vision replay``."""
    from robot_vision.replay.multi import find_bags, is_bag
    paths = [Path(b) for b in args.bag]
    if len(paths) == 1 and args.ray is None and (is_bag(paths[0]) or not paths[0].is_dir()):
        bag = paths[0]
        out = Path(args.out) if args.out else Path('artifacts') / 'replay' / (bag.stem or bag.name)
        return _run_replay(bag, out, args.config, args, args.overwrite)
    return _run_many(find_bags(paths), Path(args.out or Path('artifacts') / 'replay' / 'bags'), args)


def _run_many(bags: List[Path], out: Path, args: argparse.Namespace) -> int:
    from robot_vision.replay.multi import replay_many
    pipeline_settings, settings, hints = _settings(args.config, args, args.overwrite)
    result = replay_many(bags, out, pipeline_settings, settings, hints, jobs=_workers(args.jobs),
                         ray_address=args.ray, progress=None if args.quiet else sys.stderr)
    t = result['totals']
    print(f'{t["bags"]} bags ({t["failed"]} failed): {t["frames"]} of {t["expected"]} frames in {t["wall_s"]} s '
          f'({t["throughput_fps"]} frames/s, {result["engine"]}); {t["detections"]} detections, '
          f'{t["objects"]} objects, {t["grasps"]} grasps')
    for item in result['incomplete']:
        print(f'error: output incomplete: {item}', file=sys.stderr)
    print(f'report: {(out / "aggregate.html").resolve()}')
    return 3 if result['incomplete'] else 1 if t['failed'] == t['bags'] else 0


@_guard
def cmd_demo(args: argparse.Namespace) -> int:
    """Handle ``robot-vision demo``: replay the bundled bag into artifacts/demo (replacing the last demo)."""
    if not DEMO_BAG.is_file():
        raise InputError(f'the bundled demo bag {DEMO_BAG} is missing; rebuild it with tools/make_demo_bag.py')
    return _run_replay(DEMO_BAG, Path(args.out), args.config, args, overwrite=True)


@_guard
def cmd_compare(args: argparse.Namespace) -> int:
    """Handle ``robot-vision compare``."""
    from robot_vision.replay.compare import compare_runs
    from robot_vision.replay.multi import compare_many, is_multi_run
    out = Path(args.out) if args.out else Path(args.run_b) / 'compare'
    if is_multi_run(args.run_a) and is_multi_run(args.run_b):
        many = compare_many(args.run_a, args.run_b, out)
        for row in many['bags']:
            print(f'{row["bag"]}: {row["frames_common"]} common frames, {row["frames_identical"]} with identical '
                  f'detections; detections {row["detections_matched"]} matched, {row["detections_only_a"]} only in '
                  f'A, {row["detections_only_b"]} only in B; position delta mean {row["position_delta_mean_m"]} m')
        for side in ('only_a', 'only_b'):
            if many[side]:
                print(f'note: bags only in {side[-1].upper()}: {", ".join(many[side])}')
        print(f'report: {(out / "compare_all.json").resolve()}')
        return 3 if many['incomplete'] else 0
    result = compare_runs(args.run_a, args.run_b, out)
    d, o = result['detections'], result['objects']
    print(f'frames: {result["frames"]["common"]} common ({result["frames"]["only_a"]} only in A, '
          f'{result["frames"]["only_b"]} only in B)')
    print(f'detections: {d["matched"]} matched, {d["only_a"]} only in A, {d["only_b"]} only in B')
    print(f'objects: {o["matched"]} matched, position delta mean {o["position_delta_mean_m"]} m, '
          f'rotation delta mean {o["rotation_delta_mean_deg"]} deg')
    for note in result['notes']:
        print(f'note: {note}')
    print(f'report: {(out / "compare.html").resolve()}')
    return 0


@_guard
def cmd_play(args: argparse.Namespace) -> int:
    """Handle ``robot-vision play`` (imports rclpy)."""
    from robot_vision.ros.bag_player import play
    bag = DEMO_BAG if args.bag == 'demo' else args.bag
    return play(bag, rate=args.rate, loop=args.loop, topics=args.topics, clock=not args.no_clock,
                start_delay=args.start_delay)
