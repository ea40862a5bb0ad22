"""CLEAR-MOT metrics against small examples whose counts were worked out by hand."""

import numpy as np
import pytest

from robot_vision.errors import InputError
from robot_vision.tracking import MotAccumulator, clear_mot


def _p(*xs):
    """Points on the x axis, (N, 2)."""
    return np.array([[x, 0.0] for x in xs]).reshape(-1, 2)


def test_hand_worked_sequence_with_switch_miss_and_false_positives():
    # threshold 1.0
    # frame 0: gt 1@0, 2@5      hyp 10@0.1, 20@5.2, 30@(9,9)  -> 1-10 (0.1), 2-20 (0.2), FP 30
    # frame 1: gt 1@1, 2@6      hyp 10@1.0, 21@6.3            -> 1-10 (0.0), 2-21 (0.3): ID switch 20->21
    # frame 2: gt 1@2, 2@7      hyp 10@3.5, 21@7.0            -> 1 missed (1.5 > 1), FP 10, 2-21 (0.0)
    # frame 3: gt 1@3           hyp 10@3.2, 21@8.0            -> 1-10 (0.2; last match was 10: no switch), FP 21
    # GT = 7, matches = 6, misses = 1, FP = 3, switches = 1
    # MOTA = 1 - (1 + 3 + 1) / 7 = 2/7;  MOTP = (0.1 + 0.2 + 0.0 + 0.3 + 0.0 + 0.2) / 6 = 0.8 / 6
    gt_ids = [[1, 2], [1, 2], [1, 2], [1]]
    gt_pos = [_p(0, 5), _p(1, 6), _p(2, 7), _p(3)]
    hyp_ids = [[10, 20, 30], [10, 21], [10, 21], [10, 21]]
    hyp_pos = [np.array([[0.1, 0], [5.2, 0], [9, 9]]), _p(1.0, 6.3), _p(3.5, 7.0), _p(3.2, 8.0)]
    m = clear_mot(gt_ids, gt_pos, hyp_ids, hyp_pos, threshold=1.0)
    assert (m.num_frames, m.num_gt, m.num_matches) == (4, 7, 6)
    assert (m.num_misses, m.num_false_positives, m.num_switches) == (1, 3, 1)
    assert m.mota == pytest.approx(2 / 7)
    assert m.motp == pytest.approx(0.8 / 6)
    assert np.isnan(m.velocity_rmse)


def test_previous_correspondence_is_kept_over_a_closer_hypothesis():
    # frame 0: gt 1@0, hyp 10@0.0 -> 1-10
    # frame 1: gt 1@0, hyp 10@0.4 and 11@0.1, both within 0.5: CLEAR-MOT keeps 1-10, 11 is a FP
    # GT 2, matches 2, FP 1, switches 0 -> MOTA = 1 - 1/2 = 0.5
    acc = MotAccumulator(0.5)
    assert acc.update([1], _p(0), [10], _p(0.0)) == {1: 10}
    assert acc.update([1], _p(0), [10, 11], _p(0.4, 0.1)) == {1: 10}
    m = acc.result()
    assert (m.num_gt, m.num_matches, m.num_false_positives, m.num_switches, m.num_misses) == (2, 2, 1, 0, 0)
    assert m.mota == pytest.approx(0.5)


def test_switch_counted_after_a_gap():
    # frame 0: 1-10; frame 1: gt 1 alone -> miss; frame 2: gt 1 matched to 11 -> switch (last was 10)
    # GT 3, matches 2, misses 1, switches 1 -> MOTA = 1 - 2/3 = 1/3
    m = clear_mot([[1], [1], [1]], [_p(0), _p(0), _p(0)], [[10], [], [11]], [_p(0), _p(), _p(0.1)], 0.5)
    assert (m.num_gt, m.num_matches, m.num_misses, m.num_switches, m.num_false_positives) == (3, 2, 1, 1, 0)
    assert m.mota == pytest.approx(1 / 3)


def test_velocity_rmse_over_matches():
    # two matches with velocity errors (3, 4) and (0, 0): RMSE = sqrt((25 + 0) / 2)
    # the FP hypothesis 30 (no match) does not count
    acc = MotAccumulator(1.0)
    acc.update([1, 2], _p(0, 5), [10, 20, 30], _p(0, 5, 20),
               gt_velocities=np.array([[0.0, 0.0], [1.0, 1.0]]),
               hyp_velocities=np.array([[3.0, 4.0], [1.0, 1.0], [9.0, 9.0]]))
    m = acc.result()
    assert m.velocity_rmse == pytest.approx(np.sqrt(12.5))
    assert m.num_false_positives == 1


def test_empty_frames_and_bad_input():
    m = clear_mot([[]], [np.zeros((0, 3))], [[]], [np.zeros((0, 3))], 1.0)
    assert m.num_gt == 0 and np.isnan(m.mota)
    with pytest.raises(InputError, match='unique'):
        MotAccumulator(1.0).update([1, 1], _p(0, 1), [], _p())
    with pytest.raises(InputError, match='expected shape'):
        MotAccumulator(1.0).update([1, 2], _p(0), [], _p())
    with pytest.raises(InputError, match='threshold'):
        MotAccumulator(0.0)
    with pytest.raises(InputError, match='frames'):
        clear_mot([[1]], [_p(0)], [], [], 1.0)
