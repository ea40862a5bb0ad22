"""Which segments are objects: the clutter method's background rules and convex seams, on synthetic images."""

import numpy as np
from scipy.ndimage import find_objects

from robot_vision.camera import deproject
from robot_vision.perception3d import SegmentationSettings
from robot_vision.perception3d.background import (containers, hides_nothing, noise_bumps, occluded_fragments,
                                                  support_edges)
from robot_vision.perception3d.clutter import join_convex_seams
from robot_vision.perception3d.planar import far_side_edges
from robot_vision.perception3d.support import smoothed_normals
from robot_vision.types import CameraIntrinsics

SETTINGS = SegmentationSettings()


def _judge_all(labels):
    judged = np.ones(labels.max() + 1, bool)
    judged[0] = False
    return judged


def test_a_segment_that_hides_nothing_is_background_unless_it_faces_up():
    # A camera looking level (up = image up): label 1 is a box face 0.8 m away in front of a far room
    # (1.5 m); label 2 is a back wall 1.0 m away with only nearer things around it (label 3 in front of
    # it at 0.8 m, and more wall continuing at 1.0 m); label 4 is like the wall but faces up (a thin
    # object lying flat, which may be no taller than the step threshold).
    depth = np.full((60, 90), 1.5, np.float32)
    labels = np.zeros(depth.shape, np.int32)
    labels[5:20, 5:20], depth[5:20, 5:20] = 1, 0.8
    depth[25:60, 30:90] = 1.0
    labels[30:50, 40:60] = 2
    labels[30:50, 60:70], depth[30:50, 60:70] = 3, 0.8
    depth[25:60, 0:25] = 1.0
    labels[30:50, 5:20] = 4
    normals = np.zeros(depth.shape + (3,), np.float32)
    normals[..., 2] = -1.0  # facing the camera
    normals[labels == 4] = (0.0, -1.0, 0.0)  # facing up
    up = np.array([0.0, -1.0, 0.0], np.float32)
    background = hides_nothing(labels, find_objects(labels), depth, normals, up, SETTINGS, _judge_all(labels))
    assert background.tolist() == [False, False, True, False, False]
    # Only judged labels are judged; 0 disables the rule in segment_labels (checked by the settings).
    judged = _judge_all(labels)
    judged[2] = False
    assert not hides_nothing(labels, find_objects(labels), depth, normals, up, SETTINGS, judged)[2]


def test_only_pixels_around_a_segments_points_with_depth_are_judged():
    # Label 1: a 10 x 10 box face 0.8 m away whose right 4 columns have no depth (a dark side). Left of
    # it, far background (1.5 m: hidden); above, below and right of it, more surface at 0.8 m (not hidden).
    # The pixels right of the columns without depth are more than 3 pixels from any point of the segment:
    # nothing says whether the segment hides them, and they must not count (they did when they lay at
    # the edge of the segment's window: OpenCV's default border made their nearest depth finite).
    depth = np.full((30, 40), 0.8, np.float32)
    labels = np.zeros(depth.shape, np.int32)
    labels[10:20, 10:20] = 1
    depth[10:20, 16:20] = np.nan
    depth[11:19, 7:10] = 1.5
    normals = np.zeros(depth.shape + (3,), np.float32)
    normals[..., 2] = -1.0
    up = np.array([0.0, -1.0, 0.0], np.float32)
    # Around the points with depth (columns 10-15), 24 of the 86 ring pixels lie behind: 0.28. Counting
    # the pixels beyond the dark columns as well gave 24 / 140 = 0.17.
    settings = SegmentationSettings(min_occluded_fraction=0.2, min_wall_occluded_fraction=0.2)
    assert not hides_nothing(labels, find_objects(labels), depth, normals, up, settings, _judge_all(labels))[1]


def test_a_wall_shaped_segment_must_hide_more_of_its_surroundings():
    # Seen level (up = image up), 1.0 m away: a flat surface facing the camera with the far room (3 m)
    # above it, the rest of its surroundings continuing at its own depth: a bin's back wall, which
    # shows what lies behind it only past its top edge. Label 1 is flat (all normals alike: shaped like
    # a wall); label 2 is the same patch with normals that turn across it (a rounded object's front).
    depth = np.full((60, 90), 1.0, np.float32)
    depth[:16, :] = 3.0
    labels = np.zeros(depth.shape, np.int32)
    labels[16:52, 10:30] = 1
    labels[16:52, 55:75] = 2
    normals = np.zeros(depth.shape + (3,), np.float32)
    normals[..., 2] = -1.0
    turn = np.radians(np.linspace(-50, 50, 20, dtype=np.float32))
    normals[16:52, 55:75, 0], normals[16:52, 55:75, 2] = np.sin(turn), -np.cos(turn)
    up = np.array([0.0, -1.0, 0.0], np.float32)
    # Of the 3-pixel ring around each patch only the part above it lies behind: 0.20 of it.
    background = hides_nothing(labels, find_objects(labels), depth, normals, up, SETTINGS, _judge_all(labels))
    assert background.tolist() == [False, True, False]
    lenient = SegmentationSettings(min_wall_occluded_fraction=0.1)
    assert not hides_nothing(labels, find_objects(labels), depth, normals, up, lenient, _judge_all(labels)).any()


def test_a_low_segment_without_a_colour_outline_is_a_noise_bump():
    # 1.5 m away the step threshold is 2.4 cm: labels 1 and 2 rise 1 cm, label 3 rises 10 cm.
    depth = np.full((40, 120), 1.5, np.float32)
    height = np.zeros(depth.shape, np.float32)
    labels = np.zeros(depth.shape, np.int32)
    colour_edge = np.zeros(depth.shape, bool)
    for label, x0, rise in ((1, 5, 0.01), (2, 45, 0.01), (3, 85, 0.10)):
        labels[10:30, x0:x0 + 25] = label
        height[10:30, x0:x0 + 25] = rise
    colour_edge[9:31, 44:71] = True
    colour_edge[11:29, 46:69] = False  # a colour outline around label 2 only
    bumps = noise_bumps(labels, find_objects(labels), height, depth, colour_edge, labels == 0, SETTINGS,
                        _judge_all(labels))
    assert bumps.tolist() == [False, True, False, False]


def test_a_far_patch_as_high_as_the_support_around_it_is_a_noise_bump():
    # 3.9 m away the support lies 6 cm above its model (a far floor), more than the step threshold
    # there (5.3 cm): label 1, a patch of it at 6.5 cm that noise lifted out of the support region,
    # rises 0.5 cm above the support around it; label 2 rises 20 cm above it (an object); label 3 is as
    # low as label 1 but has a colour outline (a flat object). Label 1 is noise; measured against the
    # model alone it would have been an object, like label 2.
    depth = np.full((40, 120), 3.9, np.float32)
    height = np.full(depth.shape, 0.06, np.float32)
    labels = np.zeros(depth.shape, np.int32)
    colour_edge = np.zeros(depth.shape, bool)
    assert SETTINGS.step_threshold(3.9) < 0.06
    for label, x0, rise in ((1, 5, 0.065), (2, 45, 0.26), (3, 85, 0.065)):
        labels[10:30, x0:x0 + 25] = label
        height[10:30, x0:x0 + 25] = rise
    colour_edge[9:31, 84:111] = True
    colour_edge[11:29, 86:109] = False  # label 3's outline
    support = labels == 0
    bumps = noise_bumps(labels, find_objects(labels), height, depth, colour_edge, support, SETTINGS,
                        _judge_all(labels))
    assert bumps.tolist() == [False, True, False, False]
    no_support = noise_bumps(labels, find_objects(labels), height, depth, colour_edge, np.zeros_like(support),
                             SETTINGS, _judge_all(labels))
    assert not no_support.any()


def test_on_a_checkered_support_a_low_segment_needs_an_outline_beyond_the_texture():
    # The support is a checker of 8-pixel squares whose borders are colour edges (3 pixels wide, dilated
    # as color_edges gives them: about 60 % of the pixels). Label 1, a 1 cm bump, has an outline that
    # crosses them as often as anything does; label 2, as low, has a full colour outline of its own (a
    # flat object). Label 1 is noise, although its outline share passes min_outline_contrast alone;
    # label 2 is kept.
    depth = np.full((40, 120), 1.5, np.float32)
    height = np.zeros(depth.shape, np.float32)
    labels = np.zeros(depth.shape, np.int32)
    rows, cols = np.indices(depth.shape)
    colour_edge = np.isin(rows % 8, (7, 0, 1)) | np.isin(cols % 8, (7, 0, 1))
    for label, x0 in ((1, 10), (2, 60)):
        labels[10:30, x0:x0 + 25] = label
        height[10:30, x0:x0 + 25] = 0.01
    colour_edge[9:31, 59:86] = True
    colour_edge[11:29, 61:84] = False  # label 2's outline
    outline = labels == 1
    outline[11:29, 11:34] = False  # its border pixels
    assert colour_edge[outline].mean() > SETTINGS.min_outline_contrast
    bumps = noise_bumps(labels, find_objects(labels), height, depth, colour_edge, labels == 0, SETTINGS,
                        _judge_all(labels))
    assert bumps.tolist() == [False, True, False]


def test_the_rim_of_a_raised_support_belongs_to_it():
    # A table top (secondary support, 0.70 m above the floor) over rows 0-19; below it in the image its
    # edge face (0.69-0.66 m), an object on it (0.75 m) and, further away, something on the floor.
    height = np.zeros((40, 30), np.float32)
    secondary = np.zeros(height.shape, bool)
    height[:20], secondary[:20] = 0.70, True
    height[20:24] = np.linspace(0.69, 0.66, 4)[:, None]
    height[20:24, 20:30] = 0.75
    height[30:40] = 0.68
    candidates = ~secondary
    rim = support_edges(secondary, height, candidates, SETTINGS)
    assert rim[20:24, :20].all() and not rim[20:24, 20:].any() and not rim[30:].any()
    assert not support_edges(secondary, height, candidates, SegmentationSettings(support_edge_band=0)).any()


def test_a_totes_walls_are_a_container_not_objects():
    # 1 m away a working pixel covers 1 mm x 1 mm (footprint 1e-6 m^2). Label 1 is a closed ring of
    # walls around 0.016 m^2 of floor (secondary support); label 2 a tape roll's ring around a
    # 30 x 30 pixel hole of table; label 3 an object on the floor inside the ring. In the second image
    # the walls are open pieces (cut at the corners): label 4 borders the floor from outside and
    # touches the table (main support) too; label 5 stands on the floor inside; label 6 stands on
    # the table beside the tote, away from its floor.
    footprint = np.full((220, 300), 1e-6, np.float32)
    main = np.ones(footprint.shape, bool)
    labels = np.zeros(footprint.shape, np.int32)
    floor = np.zeros(footprint.shape, bool)
    labels[10:160, 10:160] = 1
    labels[20:150, 20:150] = 0
    floor[20:150, 20:150], main[10:160, 10:160] = True, False
    labels[60:80, 60:80] = 3
    floor[60:80, 60:80] = False
    labels[170:210, 200:240] = 2
    labels[175:205, 205:235] = 0
    supports = main | floor
    judged = _judge_all(labels)
    out = containers(labels, find_objects(labels), main, supports, np.zeros_like(floor), footprint, judged, 0.005)
    assert out.tolist() == [False, True, False, False]

    labels = np.zeros(footprint.shape, np.int32)
    floor = np.zeros(footprint.shape, bool)
    floor[40:150, 20:150] = True
    main = np.ones(footprint.shape, bool)
    main[20:150, 20:150] = False
    labels[20:40, 20:150] = 4     # the far wall, between the table beyond and the floor
    labels[60:90, 60:90] = 5
    floor[60:90, 60:90] = False
    labels[60:90, 200:230] = 6
    main[60:90, 200:230] = False
    judged = _judge_all(labels)
    out = containers(labels, find_objects(labels), main, main | floor, floor, footprint, judged, 0.005)
    assert out.tolist() == [False, False, False, False, True, False, False]


def test_a_frame_standing_around_the_support_is_a_container_not_an_object():
    # A shelf seen from the front, 1 mm per working pixel: the board (main support) is rows 120-200;
    # label 1 is the frame open at the front, two posts and the board above (rows 20-40), around it;
    # label 2 a box standing on the board; label 3 a bent object (an L) lying on the board; label 4 a
    # tape roll's ring around a patch of board. Only the frame holds the board in its image hull.
    footprint = np.full((220, 300), 1e-6, np.float32)
    main = np.zeros(footprint.shape, bool)
    main[120:200, 30:270] = True
    labels = np.zeros(footprint.shape, np.int32)
    labels[20:40, 10:290] = 1
    labels[20:200, 10:30] = 1
    labels[20:200, 270:290] = 1
    labels[90:150, 50:110] = 2
    labels[150:190, 130:140], labels[180:190, 130:180] = 3, 3
    labels[130:170, 200:240] = 4
    labels[140:160, 210:230] = 0
    main[labels > 0] = False
    judged = _judge_all(labels)
    out = containers(labels, find_objects(labels), main, main, np.zeros_like(main), footprint, judged, 0.005)
    assert out.tolist() == [False, True, False, False, False]


def test_a_small_fragment_behind_a_neighbour_is_an_occluded_remnant():
    # Seen from 1 m (fx = fy = 150: a pixel covers 0.44 cm^2): label 1 is a bottle lying 10 cm nearer
    # the camera; label 2 a 7 cm^2 tip past it (under 9 cm^2, OCCLUDED_AREA of fragment_area); label 3 the same tip
    # alone on the table; label 4 a 44 cm^2 object behind the bottle (an object, however hidden).
    depth = np.full((60, 90), 1.0, np.float32)
    labels = np.zeros(depth.shape, np.int32)
    labels[10:50, 20:30], depth[10:50, 20:30] = 1, 0.9
    labels[20:24, 30:34] = 2
    labels[20:24, 60:64] = 3
    labels[35:45, 30:40] = 4
    footprint = np.square(depth) / np.float32(150.0 * 150.0)
    kept = occluded_fragments(labels, depth, footprint, SETTINGS, min_pixels=4)
    assert np.array_equal(occluded_fragments(labels, depth, footprint, SETTINGS, min_pixels=17), labels)
    assert sorted(np.unique(kept)) == [0, 1, 3, 4]
    assert np.array_equal(kept[labels != 2], labels[labels != 2])


def test_segments_meeting_at_a_ridge_are_one_object_and_those_in_a_valley_or_at_a_step_two():
    intrinsics = CameraIntrinsics(width=160, height=120, fx=150.0, fy=150.0, cx=80.0, cy=60.0)
    xn = np.broadcast_to((np.arange(160) - 80.0) / 150.0, (120, 160))
    labels = np.where(np.arange(160) < 80, 1, 2).astype(np.int32)[None].repeat(120, axis=0)

    def joined(depth):
        depth = depth.astype(np.float32)
        cloud = deproject(depth, intrinsics)
        steps = far_side_edges(depth, SETTINGS, spans=(1, 2))
        out = join_convex_seams(labels, cloud, smoothed_normals(cloud), steps, SETTINGS)
        return len(np.unique(out)) == 1

    # A box's edge facing the camera: its two faces, each turned 27 deg away (cut apart where they are
    # shaded differently), meet at a convex edge 0.9 m away.
    assert joined(0.9 / (1 - 0.5 * np.abs(xn)))
    # Two boxes touching side by side, turned towards each other: a valley between them.
    assert not joined(0.9 / (1 + 0.5 * np.abs(xn)))
    # The ridge again, but the right face 5 cm further back: one object in front of another.
    depth = 0.9 / (1 - 0.5 * np.abs(xn))
    depth[:, 80:] += 0.05
    assert not joined(depth)
