"""Grasp searches in worker processes: planning runs on other cores, beside the caller's own work.

Grasp planning is many small numpy steps, so threads of one Python process take turns on its
interpreter lock: a grasp thread halves the speed of a perception thread beside it.
:class:`WorkerPool` runs the searches in ``processes`` child processes instead (started with
'spawn', so no thread or DDS state of the parent is copied). Each frame's collision scene goes
to a worker once, as the depth image (about 1 MB at 640x480; the worker deprojects it) or as
points; the jobs of a frame are split over the workers by their expected run time. :meth:`WorkerPool.prepare`
sends the scene as soon as the frame arrives, when the workers are idle, so that they deproject
it while the caller is still finding the objects; a worker keeps the last ``KEPT_SCENES`` scenes.

A worker that dies (killed, out of memory) makes that call raise :class:`GraspWorkerError`; the
pool starts a new one for the next call. Workers ignore SIGINT (Ctrl-C stops the parent, which
closes them) and exit when the parent's end of their pipe closes.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
from dataclasses import dataclass
from typing import Dict, Hashable, List, Optional, Sequence, Tuple

import numpy as np

from robot_vision.camera import _rays, deproject
from robot_vision.errors import RobotVisionError
from robot_vision.grasping.gripper import GripperModel
from robot_vision.grasping.planner import GraspResult, GraspSettings, _planner
from robot_vision.processes import single_threaded_children
from robot_vision.types import CameraIntrinsics, Grasps

#: Seconds a worker gets to exit on close before it is terminated.
CLOSE_TIMEOUT_S = 2.0
#: Scenes a worker keeps (a frame's scene may arrive before the jobs of the previous frame).
KEPT_SCENES = 2
#: Run times (ms) of a grasp search and of a check of kept grasps on this machine, for jobs without
#: their own expectation (searches take 3-15 ms per object, checks 1-3 ms).
TYPICAL_SEARCH_MS, TYPICAL_CHECK_MS = 8.0, 1.5


class GraspWorkerError(RobotVisionError):
    """A grasp worker process failed or exited."""


class SceneCloud:
    """The collision scene of one frame: a depth image deprojected where it is used, or points.

    ``points`` (N, 3) float32: the valid scene points (computed once, from the depth image
    voxel-downsampled by ``voxel`` when > 0). The planner's collision checks only need the points
    in a box around an object's candidates: :meth:`window` gives them from the part of the depth
    image that can hold such points, without building ``points`` (at 1280x720 that and the crops of
    the whole cloud cost about 25 ms a frame). Pickles without the computed points, so a worker
    receives only the depth image.
    """

    #: Slack (in ray units, x/z; about 0.1 pixel at a 600-pixel focal length) around a window's bounds.
    WINDOW_SLACK = 1e-4

    def __init__(self, depth: Optional[np.ndarray] = None, intrinsics: Optional[CameraIntrinsics] = None,
                 voxel: float = 0.0, points: Optional[np.ndarray] = None) -> None:
        if (points is None) == (depth is None):
            raise ValueError('SceneCloud: give either a depth image and intrinsics, or points')
        self.depth, self.intrinsics, self.voxel = depth, intrinsics, voxel
        self._points = points
        self._cloud: Optional[np.ndarray] = None

    @property
    def points(self) -> np.ndarray:
        """Valid scene points (N, 3) float32."""
        if self._points is None:
            from robot_vision.perception3d.filtering import voxel_downsample
            cloud = self.cloud.reshape(-1, 3)
            points = np.compress(np.isfinite(cloud[:, 2]), cloud, axis=0)  # 3x faster than a boolean index
            self._points = voxel_downsample(points, self.voxel) if self.voxel > 0 and len(points) else points
        return self._points

    @property
    def cloud(self) -> np.ndarray:
        """The depth image's organised cloud (H, W, 3) float32, NaN where invalid (depth scenes only)."""
        if self._cloud is None:
            self._cloud = deproject(self.depth, self.intrinsics)
        return self._cloud

    def prepare(self) -> None:
        """Compute now what :meth:`window` will use (e.g. while the caller finds the objects)."""
        if self.depth is not None and self.voxel <= 0:
            len(self.cloud)
        else:
            len(self.points)

    def window(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Scene points (M, 3) holding every valid one in the box [lo, hi), in ``points`` order (and others, NaN rows).

        From a depth scene (no voxel): the points of the image rectangle whose rays pass through the
        box, found from the ratios x/z and y/z of its corners (the box must lie in front of the camera,
        else all ``points``). Otherwise ``points``.
        """
        if self.depth is None or self.voxel > 0 or not lo[2] > 0 or min(self.intrinsics.fx, self.intrinsics.fy) <= 0:
            return self.points
        u, v = _rays(self.intrinsics)
        near, far = float(lo[2]), float(hi[2])
        bounds = []
        for rays, a, b in ((u, float(lo[0]), float(hi[0])), (v, float(lo[1]), float(hi[1]))):
            first = np.searchsorted(rays, min(a / near, a / far) - self.WINDOW_SLACK, 'left')
            last = np.searchsorted(rays, max(b / near, b / far) + self.WINDOW_SLACK, 'right')
            bounds.append((max(int(first) - 1, 0), int(last) + 1))  # and a pixel more on each side
        (c0, c1), (r0, r1) = bounds
        return self.cloud[r0:r1, c0:c1].reshape(-1, 3)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if self.depth is not None:
            state['_points'] = state['_cloud'] = None
        return state


@dataclass(frozen=True)
class Job:
    """One object's work in a frame: 'search' its points, or check kept ``grasps`` 'again' on them.

    ``expected_ms``: how long it should take, e.g. the object's last search (0: not known).
    """

    kind: str
    points: np.ndarray
    grasps: Optional[Grasps] = None
    expected_ms: float = 0.0

    @property
    def cost(self) -> float:
        """Expected run time (ms), to balance the workers: ``expected_ms``, else a typical search or check.

        The size of an object says little: its cloud is thinned to ``max_object_points``, and a
        search that finds grasps costs twice one that finds none.
        """
        if self.expected_ms > 0:
            return self.expected_ms
        return TYPICAL_SEARCH_MS if self.kind == 'search' else TYPICAL_CHECK_MS


def run_jobs(gripper: GripperModel, settings: GraspSettings, scene: SceneCloud, normal: Optional[np.ndarray],
             viewpoint: Optional[np.ndarray], jobs: Sequence[Job]) -> List[GraspResult]:
    """Run ``jobs`` on ``scene`` in this process, in order."""
    planner = _planner(gripper, settings)
    return [planner.plan(job.points, scene, normal, viewpoint) if job.kind == 'search'
            else planner.reverify(job.points, scene, job.grasps, viewpoint) for job in jobs]


def _serve(conn, gripper: GripperModel, settings: GraspSettings) -> None:
    """Worker loop over messages from :class:`WorkerPool`; replies ('ok', results) or ('error', text) to jobs.

    ('scene', key, scene): keep it and deproject it now. ('jobs', key, scene or None, normal,
    viewpoint, jobs): run the jobs on the scene ``key`` (sent with them or before).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    scenes: Dict[Hashable, SceneCloud] = {}

    def keep(key: Hashable, scene: SceneCloud) -> None:
        scenes[key] = scene
        while len(scenes) > KEPT_SCENES:
            del scenes[next(iter(scenes))]

    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        if message[0] == 'scene':
            keep(message[1], message[2])
            message[2].prepare()  # deproject now, while the parent is busy elsewhere
            continue
        _, key, scene, normal, viewpoint, jobs = message
        if scene is not None:
            keep(key, scene)
        try:
            if key not in scenes:
                raise GraspWorkerError(f'scene {key!r} was never sent to this worker')
            conn.send(('ok', run_jobs(gripper, settings, scenes[key], normal, viewpoint, jobs)))
        except Exception as exc:  # noqa: BLE001 - any failure goes back to the caller, the worker lives on
            conn.send(('error', f'{type(exc).__name__}: {exc}'))


class _Worker:
    def __init__(self, context, gripper: GripperModel, settings: GraspSettings, index: int) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, gripper, settings), daemon=True,
                                       name=f'robot_vision_grasp_worker_{index}')
        with single_threaded_children():  # a search is many small matrix products: BLAS threads only cost
            self.process.start()
        child.close()
        self.scenes: List[Hashable] = []  # keys of the scenes the worker keeps, oldest first

    def send_scene(self, key: Hashable, scene: SceneCloud) -> None:
        self.conn.send(('scene', key, scene))
        self.scenes = (self.scenes + [key])[-KEPT_SCENES:]

    def send_jobs(self, key: Hashable, scene: SceneCloud, normal, viewpoint, jobs: List[Job]) -> None:
        fresh = key not in self.scenes
        self.conn.send(('jobs', key, scene if fresh else None, normal, viewpoint, jobs))
        if fresh:
            self.scenes = (self.scenes + [key])[-KEPT_SCENES:]

    def close(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, ValueError):
            pass
        self.conn.close()
        self.process.join(CLOSE_TIMEOUT_S)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(CLOSE_TIMEOUT_S)


class WorkerPool:
    """``processes`` grasp worker processes for one (gripper, settings).

    :meth:`prepare` may be called from another thread than :meth:`run`; :meth:`run` itself is
    for one thread at a time.
    """

    def __init__(self, gripper: GripperModel, settings: GraspSettings, processes: int) -> None:
        if processes < 1:
            raise ValueError(f'WorkerPool: expected at least 1 process, got {processes}')
        self._args = (gripper, settings)
        self._context = multiprocessing.get_context('spawn')
        self._workers = [_Worker(self._context, gripper, settings, i) for i in range(processes)]
        self._lock = threading.Lock()
        self._busy = False

    def prepare(self, key: Hashable, scene: SceneCloud) -> None:
        """Send the scene of frame ``key`` to the workers now if they are idle (else :meth:`run` sends it)."""
        with self._lock:
            if self._busy or not self._workers:
                return
            try:
                for worker in self._workers:
                    worker.send_scene(key, scene)
            except (OSError, ValueError):
                pass  # a dead worker: the next run reports it and starts a new one

    def run(self, key: Hashable, scene: SceneCloud, normal: Optional[np.ndarray], viewpoint: Optional[np.ndarray],
            jobs: Sequence[Job]) -> List[GraspResult]:
        """Results of ``jobs`` in order, run on the scene of frame ``key``."""
        results: List[Optional[GraspResult]] = [None] * len(jobs)
        sent: List[Tuple[_Worker, List[int]]] = []
        try:
            with self._lock:
                self._busy = True
                for worker, rows in zip(self._workers, self._split(jobs)):
                    if rows:
                        worker.send_jobs(key, scene, normal, viewpoint, [jobs[i] for i in rows])
                        sent.append((worker, rows))
            # Every reply first: one left queued would answer the next call.
            replies = [(worker, rows, worker.conn.recv()) for worker, rows in sent]
            for worker, rows, (status, value) in replies:
                if status != 'ok':
                    raise GraspWorkerError(f'grasp worker {worker.process.name}: {value}')
                for i, result in zip(rows, value):
                    results[i] = result
        except (EOFError, OSError, ValueError, TypeError) as exc:
            with self._lock:
                if not self._workers:  # closed meanwhile (the node shuts down): nothing to restart
                    # A connection closed under a blocked recv raises any of these (TypeError: its handle is gone).
                    raise GraspWorkerError('the grasp worker processes were closed during the search') from exc
                if isinstance(exc, TypeError):
                    raise
                self._restart()
            raise GraspWorkerError(f'a grasp worker process exited ({type(exc).__name__}: {exc}); '
                                   f'a new one is started for the next frame') from exc
        finally:
            self._busy = False
        return results  # type: ignore[return-value]

    def _split(self, jobs: Sequence[Job]) -> List[List[int]]:
        """Job rows per worker: largest first onto the least loaded worker."""
        load = [0.0] * len(self._workers)
        shares: List[List[int]] = [[] for _ in self._workers]
        for i in sorted(range(len(jobs)), key=lambda i: -jobs[i].cost):
            target = int(np.argmin(load))
            shares[target].append(i)
            load[target] += jobs[i].cost
        return [sorted(rows) for rows in shares]

    def _restart(self) -> None:
        """New workers for all: the living ones may still hold a reply to the failed call."""
        for i, worker in enumerate(self._workers):
            worker.close()
            self._workers[i] = _Worker(self._context, *self._args, i)

    def close(self) -> None:
        """Stop the worker processes."""
        with self._lock:
            for worker in self._workers:
                worker.close()
            self._workers = []
