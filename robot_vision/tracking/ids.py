"""The id each detection and 3D object of a frame is known by: its track id when tracking, else its row.

With tracking on, the tracker gives each observation the id of the track it updated or started
(``Tracker.assigned_ids``). A started track is tentative until ``confirm_hits`` matches, but it
keeps that id once confirmed, and ids are never reused, so an object carries one id from the first
frame it is seen in: the id ``tracked_objects`` shows once the track is confirmed. An object or
detection that has no track in a frame (the frame was not tracked, e.g. no camera pose; a 2D
detection that gave no 3D object; an observation that started no track because of
``spawn_min_confidence`` or ``max_tracks``) has no id, :data:`NO_ID`, rather than a number that
could be another object's track id. With tracking off, ids are the detection's row + 1 within its
frame and mean nothing across frames.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from robot_vision.errors import InputError
from robot_vision.types import Detections, Objects3D

#: The id of a detection without a track while tracking is on (track ids start at 1).
NO_ID = -1


def detection_rows(objects: Objects3D, n_detections: int) -> np.ndarray:
    """The detection row of each object, (N,) int64: ``objects.detection_index``, -1 where none.

    Objects of the depth backend have index -1 and are their ``n_detections`` detections row for row.
    """
    rows = np.asarray(objects.detection_index, np.int64).copy()
    if n_detections == len(objects):
        own = rows < 0
        rows[own] = np.flatnonzero(own)
    rows[rows >= n_detections] = -1
    return rows


def with_track_ids(detections: Detections, assigned_ids: np.ndarray,
                   rows: Optional[np.ndarray] = None) -> Detections:
    """``detections`` with ``tracker_id`` set from a tracker's ``assigned_ids`` (:data:`NO_ID` where none).

    ``assigned_ids`` (M,) holds the track id of each tracked observation (-1: none). ``rows`` (M,)
    names the detection each observation came from (see :func:`detection_rows`; -1: none); None
    means the observations are the detections (the 2D tracker).
    """
    assigned = np.asarray(assigned_ids, np.int64).reshape(-1)
    rows = np.arange(len(detections)) if rows is None else np.asarray(rows, np.int64).reshape(-1)
    if len(rows) != len(assigned):
        raise InputError(f'track ids: expected one detection row per observation, got {len(rows)} rows '
                         f'for {len(assigned)} ids')
    ids = np.full(len(detections), NO_ID, np.int64)
    known = (rows >= 0) & (assigned > 0)
    ids[rows[known]] = assigned[known]
    return dataclasses.replace(detections, tracker_id=ids)


def untracked(detections: Detections) -> Detections:
    """``detections`` in a frame that tracking skipped: every ``tracker_id`` is :data:`NO_ID`."""
    return dataclasses.replace(detections, tracker_id=np.full(len(detections), NO_ID, np.int64))
