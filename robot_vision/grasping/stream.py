"""Grasp planning on a stream of frames: an object that is still where it was keeps its grasps.

A search for grasps (normals, antipodal pairs, hundreds of candidates) costs several milliseconds
per object, and on a static scene it finds much the same grasps frame after frame. The
:class:`StreamGraspPlanner` keeps each object's result and, when the object is found again within
``reuse_distance`` of where it was (same class), moves its grasps by the centroid's motion and
runs only the checks that follow the search on the new frame: occupancy-grid collisions,
clearance, NMS, the exact point-in-box test against the scene points and width and contacts on
the object's points. Grasps that pass are valid for the new frame by the same tests a fresh plan
applies.

Searched in a frame:

- objects not matched to one of the previous frame's;
- objects whose kept grasps all fail the checks;
- objects without grasps whose last ``MISSES_BEFORE_WAITING`` searches did not all come out
  empty: a search samples candidates and the noise changes between frames, so an object that
  is only sometimes graspable is searched every frame;
- one more matched object, the one searched longest ago: objects that keep finding nothing (too
  big, too flat, blocked) and objects with kept grasps are searched again in turn, at most
  ``max_objects`` frames apart, and one search per frame keeps the cost per frame flat. When this
  search finds nothing for an object with kept grasps, those that pass the checks stay.

Objects are matched to the previous frame's greedily by centroid distance, same class only; a
result no object matches is kept for ``UNSEEN_FRAMES_KEPT`` frames (segmentation may miss or
split an object for a frame).
Time going backwards (a looping bag) forgets everything, as does :meth:`StreamGraspPlanner.reset`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from robot_vision.geometry import mean_point
from robot_vision.grasping.gripper import GripperModel
from robot_vision.grasping.planner import (
    GraspResult,
    GraspSettings,
    _as_direction,
    _as_points,
    _as_viewpoint,
    planned_rows,
    scene_result,
)
from robot_vision.grasping.workers import Job, SceneCloud, WorkerPool, run_jobs
from robot_vision.types import Objects3D

#: Consecutive empty searches after which an object without grasps waits for its turn.
MISSES_BEFORE_WAITING = 3
#: Frames an object's result is kept while no object of a frame matches it (segmentation may
#: miss or split an object for a frame or two).
UNSEEN_FRAMES_KEPT = 3


@dataclass(frozen=True)
class _Kept:
    """One object's result as of the latest frame it was seen in."""

    centroid: np.ndarray
    class_id: int
    result: GraspResult
    searched_at: float  # stamp (s) of the frame of the last search
    misses: int  # consecutive searches that found no grasp
    search_ms: float  # how long the last search took (balances the worker processes)
    unseen: int = 0  # frames since an object last matched it


class StreamGraspPlanner:
    """:func:`robot_vision.grasping.plan_scene_grasps` over consecutive frames, reusing still objects' grasps.

    ``processes`` > 0 runs the searches and checks in that many worker processes
    (:mod:`robot_vision.grasping.workers`); call :meth:`close` to stop them. Not thread-safe: one
    stream per instance. ``last_reused`` lists the rows whose result the latest :meth:`plan` kept
    from an earlier frame; ``searched`` and ``reused`` count the objects searched and kept since
    the start.
    """

    def __init__(self, gripper: GripperModel = GripperModel(), settings: GraspSettings = GraspSettings(),
                 processes: int = 0) -> None:
        self._gripper, self._settings = gripper, settings
        self._pool = WorkerPool(gripper, settings, processes) if processes > 0 else None
        self._kept: List[_Kept] = []
        self._last_stamp: Optional[float] = None
        self.last_reused: List[int] = []
        self.searched = self.reused = 0

    def reset(self) -> None:
        """Forget every kept result: the next frame searches every object."""
        self._kept, self._last_stamp = [], None

    def close(self) -> None:
        """Stop the worker processes (if any)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def plan(self, objects: Objects3D, scene: Union[SceneCloud, np.ndarray], stamp: float,
             support_normal: Optional[np.ndarray] = None, object_indices: Optional[Sequence[int]] = None,
             viewpoint: Optional[np.ndarray] = (0.0, 0.0, 0.0)) -> GraspResult:
        """Grasps of ``objects`` in the frame stamped ``stamp`` (s).

        ``scene``: the frame's collision scene, a :class:`SceneCloud` or scene points; other
        arguments and the result as :func:`robot_vision.grasping.plan_scene_grasps`.
        """
        s = self._settings
        if not isinstance(scene, SceneCloud):
            scene = SceneCloud(points=_as_points(scene, 'scene_points'))
        normal = _as_direction(support_normal, 'support_normal')
        view = _as_viewpoint(viewpoint)
        rows, skipped = planned_rows(objects, object_indices, s)
        if s.reuse_distance <= 0 or (self._last_stamp is not None and stamp < self._last_stamp):
            self.reset()
        self._last_stamp = stamp
        points = {row: _as_points(objects.points[row], f'objects.points[{row}]') for row in rows}
        centroids = {row: _centroid(points[row]) for row in rows}
        match, unmatched = self._match(rows, centroids, objects.class_id)
        waiting = [row for row, kept in match.items() if kept.result.ok or kept.misses >= MISSES_BEFORE_WAITING]
        refresh = min(waiting, key=lambda row: (match[row].searched_at, row)) if waiting else None

        def moved(row: int) -> Job:  # the kept grasps, moved with the object's centroid
            kept = match[row]
            pose = kept.result.grasps.pose.copy()
            pose[:, :3, 3] += centroids[row] - kept.centroid
            return Job('again', points[row], dataclasses.replace(kept.result.grasps, pose=pose))

        # First round: searches, and checks of kept grasps (also for the refresh, as its fallback).
        jobs: Dict[Tuple[int, str], Job] = {}
        for row in rows:
            kept = match.get(row)
            if kept is None or row not in waiting or row == refresh:
                jobs[row, 'search'] = Job('search', points[row], expected_ms=kept.search_ms if kept else 0.0)
            if kept is not None and kept.result.ok and row in waiting:
                jobs[row, 'again'] = moved(row)
        done = dict(zip(jobs, self._run(stamp, scene, normal, view, list(jobs.values()))))
        # Second round: objects whose kept grasps all failed the checks are searched.
        failed = [row for row in rows if (row, 'again') in done and not done[row, 'again'].ok
                  and (row, 'search') not in done]
        if failed:
            again = self._run(stamp, scene, normal, view,
                              [Job('search', points[row], expected_ms=match[row].search_ms) for row in failed])
            done.update(((row, 'search'), result) for row, result in zip(failed, again))

        results: List[GraspResult] = []
        kept_now: List[_Kept] = []
        self.last_reused = []
        for row in rows:
            kept, search, check = match.get(row), done.get((row, 'search')), done.get((row, 'again'))
            if search is not None:
                self.searched += 1
                result = check if not search.ok and check is not None and check.ok else search
                misses = 0 if result.ok else (kept.misses if kept is not None else 0) + 1
                kept = _Kept(centroids[row], int(objects.class_id[row]), result, stamp, misses,
                             search.timings_ms.get('total', sum(search.timings_ms.values())))
            else:  # kept grasps that passed again, or a kept 'no grasp'
                result = check if check is not None else dataclasses.replace(
                    kept.result, candidates_evaluated=0, timings_ms={}, rejected={})
                self.reused += 1
                self.last_reused.append(row)
                kept = dataclasses.replace(kept, centroid=centroids[row], result=result)
            results.append(result)
            if np.all(np.isfinite(kept.centroid)):
                kept_now.append(kept)
        self._kept = kept_now + [dataclasses.replace(kept, unseen=kept.unseen + 1) for kept in unmatched
                                 if kept.unseen + 1 < UNSEEN_FRAMES_KEPT]
        return scene_result(rows, results, skipped, s)

    def prepare(self, stamp: float, scene: SceneCloud) -> None:
        """Hand the scene of the frame stamped ``stamp`` to idle worker processes early (no-op without any)."""
        if self._pool is not None:
            self._pool.prepare(stamp, scene)

    def _run(self, stamp: float, scene: SceneCloud, normal: Optional[np.ndarray], view: Optional[np.ndarray],
             jobs: List[Job]) -> List[GraspResult]:
        if not jobs:
            return []
        if self._pool is None:
            return run_jobs(self._gripper, self._settings, scene, normal, view, jobs)
        return self._pool.run(stamp, scene, normal, view, jobs)

    def _match(self, rows: List[int], centroids: Dict[int, np.ndarray],
               class_ids: np.ndarray) -> Tuple[Dict[int, _Kept], List[_Kept]]:
        """Row -> the kept result of the same class nearest to it within ``reuse_distance`` (greedy, one-to-one).

        Also returns the kept results no row matched.
        """
        pairs = []
        for row in rows:
            for index, kept in enumerate(self._kept):
                if kept.class_id != int(class_ids[row]):
                    continue
                distance = float(np.linalg.norm(centroids[row] - kept.centroid))
                if distance <= self._settings.reuse_distance:
                    pairs.append((distance, row, index))
        match: Dict[int, _Kept] = {}
        used = set()
        for _, row, index in sorted(pairs):
            if row not in match and index not in used:
                match[row] = self._kept[index]
                used.add(index)
        return match, [kept for index, kept in enumerate(self._kept) if index not in used]


def _centroid(points: np.ndarray) -> np.ndarray:
    """Mean of the finite points (NaN when there is none)."""
    if not np.isfinite(points).all():
        points = points[np.isfinite(points).all(axis=1)]
    return mean_point(points) if len(points) else np.full(3, np.nan)
