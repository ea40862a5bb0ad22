"""The nodes' shared machinery that runs without a ROS graph: latest-item worker, malloc tuning, DDS checks."""

import platform
import threading

import pytest

from robot_vision.errors import InputError
from robot_vision.ros.diagnostics import PairingWatch, large_image_problem
from robot_vision.ros.latest_worker import LatestWorker
from robot_vision.ros.node_base import tune_malloc


def test_latest_worker_handles_the_newest_item_and_counts_replaced_ones():
    gate, handled, errors = threading.Event(), [], []

    def handle(item):
        gate.wait(5.0)
        if item == 'bad':
            raise InputError('bad frame')
        handled.append(item)

    worker = LatestWorker('test_worker', handle, errors.append)
    worker.submit(1)  # taken at once; the worker blocks on the gate
    while worker._pending is not None:
        pass
    for item in (2, 3, 'bad'):
        worker.submit(item)  # 2 and 3 are replaced while waiting
    gate.set()
    worker.submit(4)
    deadline = threading.Event()
    for _ in range(100):
        if handled and handled[-1] == 4:
            break
        deadline.wait(0.05)
    worker.stop()
    assert handled[0] == 1 and handled[-1] == 4 and 2 not in handled and 3 not in handled
    assert worker.dropped >= 2
    assert [str(e) for e in errors] in ([], ['bad frame'])  # 'bad' may itself be replaced by 4
    assert not worker.is_alive()


def test_errors_reach_the_handler_and_the_worker_keeps_going():
    done, errors = threading.Event(), []

    def handle(item):
        if item == 'bad':
            raise InputError('depth image is 3x3')
        done.set()

    worker = LatestWorker('test_worker', handle, errors.append)
    worker.submit('bad')
    for _ in range(100):
        if errors:
            break
        done.wait(0.05)
    worker.submit('good')
    assert done.wait(5.0)
    worker.stop()
    assert [str(e) for e in errors] == ['depth image is 3x3']


@pytest.mark.skipif(platform.system() != 'Linux', reason='mallopt is glibc (Linux) only')
def test_tune_malloc_applies_on_glibc():
    assert tune_malloc() is True


def test_large_images_over_fast_dds_without_a_profile_are_diagnosed():
    image = 640 * 480 * 2  # 16UC1 depth: 600 KiB
    problem = large_image_problem('/camera/depth', image, 'rmw_fastrtps_cpp', {})
    assert '/camera/depth: 600 KiB' in problem and 'fastdds_large_images.xml' in problem
    assert large_image_problem('/camera/depth', image, 'rmw_fastrtps_cpp',
                               {'FASTRTPS_DEFAULT_PROFILES_FILE': '/x.xml'}) is None
    assert large_image_problem('/camera/depth', image, 'rmw_fastrtps_cpp',
                               {'FASTDDS_DEFAULT_PROFILES_FILE': '/x.xml'}) is None
    assert large_image_problem('/camera/depth', 320 * 240 * 2, 'rmw_fastrtps_cpp', {}) is None
    assert large_image_problem('/camera/depth', image, 'rmw_cyclonedds_cpp', {}) is None


def test_pairing_watch_explains_unpaired_inputs_and_notices_time_going_back():
    watch = PairingWatch(['color', 'depth'], slop_s=0.03, grace_s=2.0)
    assert watch.arrived('color', 10.0) is None and watch.pairing_problem(now=100.0) is None  # depth missing
    assert watch.arrived('depth', 10.15) is None
    assert watch.pairing_problem(now=100.0) is None  # the grace starts when every input has arrived
    text = watch.pairing_problem(now=102.5)
    assert text.startswith('color and depth arrive but do not pair (no set for 2.5 s): their latest stamps differ '
                           'by 150 ms (depth ahead of color), sync_slop_s is 30 ms')
    watch.paired()
    assert watch.pairing_problem() is None
    assert watch.arrived('color', 5.0) == 10.0 and watch.stamps == {'color': 5.0}  # a looped bag
