"""An object and the wall it stands against, one segment, come apart; an object's own faces never do."""

import numpy as np
from scipy.ndimage import find_objects

from robot_vision.camera import deproject
from robot_vision.perception3d import SegmentationSettings, walls
from robot_vision.perception3d.clutter import pixel_footprint
from robot_vision.perception3d.support import smoothed_normals
from robot_vision.perception3d.walls import upright_parts
from robot_vision.types import CameraIntrinsics

SETTINGS = SegmentationSettings()
# A camera looking level at a shelf bin: optical y points down, so up is -y.
UP = np.array([0.0, -1.0, 0.0])


def _intrinsics(scale):
    """160 x 120 pixels over a field of view ``scale`` times that of a 150-pixel focal length."""
    return CameraIntrinsics(width=160, height=120, fx=150.0 / scale, fy=150.0 / scale, cx=80.0, cy=60.0)


def _rays(scale):
    intrinsics = _intrinsics(scale)
    return np.meshgrid((np.arange(160) - 80.0) / intrinsics.fx, (np.arange(120) - 60.0) / intrinsics.fy)


def _split(depth, up=UP, scale=1.0):
    """upright_parts on one segment covering every pixel with depth."""
    depth = depth.astype(np.float32)
    cloud = deproject(depth, _intrinsics(scale))
    labels = np.isfinite(depth).astype(np.int32)
    footprint = pixel_footprint(depth, _intrinsics(scale))
    return upright_parts(labels, find_objects(labels), cloud, smoothed_normals(cloud), footprint, up, SETTINGS,
                         np.array([False, True]))


def _book_against_wall(scale=1.0):
    """A bin's back wall 1 m away, 40 x 30 cm in view, and a book (17 x 20 cm) leaning back on it, all x ``scale``.

    The book's foot stands 5 cm out from the wall, its top edge lies on the wall (14 deg of lean): the
    plane z = 1 - 0.025 scale - 0.25 y.
    """
    xn, yn = _rays(scale)
    depth = np.full((120, 160), np.nan)
    depth[(np.abs(xn) <= 0.2 * scale) & (np.abs(yn) <= 0.15 * scale)] = 1.0
    book = (1 - 0.025 * scale) / (1 + 0.25 * yn)
    x, y = xn * book, yn * book
    inside = (np.abs(y) <= 0.1 * scale) & (x >= -0.12 * scale) & (x <= 0.05 * scale)
    depth[inside] = book[inside]
    return depth, inside


def test_a_book_leaning_on_the_back_wall_comes_apart_from_it():
    depth, book = _book_against_wall()
    split, pairs = _split(depth)
    assert len(pairs) == 1
    label, part = pairs[0]
    parts = [split == label, split == part]
    on_book = [np.mean(p[book]) for p in parts]
    assert max(on_book) > 0.9  # one part is the book ...
    book_part = parts[int(np.argmax(on_book))]
    assert np.mean(book_part[~book]) < 0.05  # ... and little of the wall


def test_an_object_s_faces_and_a_single_plane_stay_one():
    xn, _ = _rays(1.0)
    # A box corner facing the camera: two upright faces meeting at a convex edge 0.9 m away.
    assert _split(0.9 / (1 - np.abs(xn)))[1] == []
    # A wall alone.
    assert _split(np.full((120, 160), 1.0))[1] == []


def test_planes_that_are_not_upright_stay_one():
    # With the camera looking down (up is -z, towards it), the same two planes lie nearly flat: a
    # box's top and a tilted lid, say, not an object against a wall.
    depth, _ = _book_against_wall()
    assert _split(depth, np.array([0.0, 0.0, -1.0]))[1] == []


def test_segments_smaller_than_min_area_stay_one(monkeypatch):
    depth, _ = _book_against_wall(0.5)  # 0.03 m^2 of wall and book
    assert len(_split(depth, scale=0.5)[1]) == 1
    monkeypatch.setattr(walls, 'MIN_AREA', 0.05)
    assert _split(depth, scale=0.5)[1] == []
