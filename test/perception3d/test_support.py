"""The support under a flat object, objects standing where the support shows no depth, stable colour edges."""

import cv2
import numpy as np

from robot_vision.camera import deproject
from robot_vision.perception3d import SegmentationSettings
from robot_vision.perception3d.clutter import color_edges
from robot_vision.perception3d.support import STANDING_HEIGHT, smoothed_normals, standing_beyond, support_below
from robot_vision.types import CameraIntrinsics

SETTINGS = SegmentationSettings()
# A camera looking straight down (optical z along gravity): up, towards the camera, is -z.
INTRINSICS = CameraIntrinsics(width=160, height=120, fx=150.0, fy=150.0, cx=80.0, cy=60.0)


def _lowered(depth: np.ndarray, top: float) -> np.ndarray:
    """support_below for the plane at depth ``top`` (normal towards the camera) in a top-down view."""
    cloud = deproject(depth.astype(np.float32), INTRINSICS)
    plane = np.array([0.0, 0.0, -1.0, top])
    return support_below(plane, cloud, smoothed_normals(cloud), INTRINSICS.fx, SETTINGS)


def test_a_flat_pack_taken_for_the_support_gives_way_to_the_floor_beside_it():
    depth = np.full((120, 160), np.nan)
    depth[:50] = 0.5 + 0.008 * np.arange(50)[:, None]  # a steep wall beyond, facing the camera at 60 deg
    depth[60:80, 60:90] = 0.97  # a 3 cm pack, larger in view than the glossy floor that returns depth
    depth[82:92, 60:90] = 1.0  # the floor seen in front of it
    lowered = _lowered(depth, 0.97)
    assert np.allclose(lowered, [0.0, 0.0, -1.0, 1.0], atol=2e-3)
    # The same pack filling a tenth of the view or more is the surface the camera looks at: it stays.
    depth[:50] = np.nan
    assert np.array_equal(_lowered(depth, 0.97), [0.0, 0.0, -1.0, 0.97])


def test_a_table_keeps_its_plane():
    # A lower board far from the table's edge in the image (a shelf board's front over the next one).
    depth = np.full((120, 160), np.nan)
    depth[0:80, :] = 1.0
    depth[105:120, :] = 1.03
    assert np.array_equal(_lowered(depth, 1.0), [0.0, 0.0, -1.0, 1.0])
    # A warped table whose near part sags 3 cm below the plane: one continuous surface, no floor.
    depth = np.full((120, 160), 1.0)
    depth[60:, :] += np.linspace(0.0, 0.03, 60)[:, None]
    assert np.array_equal(_lowered(depth, 1.0), [0.0, 0.0, -1.0, 1.0])
    # A few pixels below the table beside it (noise, a rim): not a floor.
    depth = np.full((120, 160), 1.0)
    depth[100:103, 40:45] = 1.03
    assert np.array_equal(_lowered(depth, 1.0), [0.0, 0.0, -1.0, 1.0])


def test_what_reaches_down_to_the_plane_beyond_the_support_outline_stands_on_it():
    height = np.full((60, 80), np.nan, np.float32)
    regions = np.zeros((60, 80), bool)
    # A book standing on a glossy floor that returns no depth: its foot is a few mm above the plane.
    height[10:40, 5:20] = np.linspace(0.2, STANDING_HEIGHT - 0.002, 30)[:, None]
    regions[10:40, 5:20] = True
    # A box seen past a table's far edge: its lowest visible point is 5 cm above the table.
    height[10:40, 30:45] = np.linspace(0.3, 0.05, 30)[:, None]
    regions[10:40, 30:45] = True
    # An object on the support whose foot lies inside the outline, with its top reaching beyond it.
    height[10:40, 55:70] = np.linspace(0.2, 0.008, 30)[:, None]
    regions[10:40, 55:70] = True
    beyond = np.ones((60, 80), bool)
    beyond[35:, 55:70] = False
    standing = standing_beyond(beyond, regions, height)
    assert standing[10:40, 5:20].all()
    assert not standing[:, 25:].any()
    # A region joins the one that stands only through pixels without a depth step between them.
    regions[25, 20:30] = True
    assert standing_beyond(beyond, regions, height)[10:40, 30:45].all()


def test_colour_edges_are_the_same_on_every_run():
    rng = np.random.default_rng(0)
    color = cv2.GaussianBlur(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), (0, 0), 2)
    first = color_edges(color, (240, 320), SETTINGS)
    assert 0.1 < first.mean() < 0.5  # many gradients near the threshold, where a last bit decides
    held = []
    for size in range(1, 41):  # other allocations in between, as a segmentation makes them
        held.append(np.ones(size * 3, np.uint8))
        assert np.array_equal(color_edges(color, (240, 320), SETTINGS), first)
