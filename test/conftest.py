"""Shared fixtures: the real-data folder, an artifact folder per test, and per-test ROS domains."""

import logging
import os
import re
from pathlib import Path

import pytest

from robot_vision.datasets import shared_data_dir
from robot_vision.ros.diagnostics import FASTDDS_PROFILE_VARIABLES

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / 'artifacts'
DDS_PROFILE = ROOT / 'config' / 'fastdds_large_images.xml'

_SHARED = shared_data_dir()
_passed = 0


@pytest.fixture(scope='session')
def shared_data() -> Path:
    """The shared real RGB-D data folder; tests that need it skip with the reason when absent."""
    if _SHARED is None:
        pytest.skip('real RGB-D data not found: ../shared/data is absent in this checkout '
                    '(set ROBOT_VISION_DATA to its location to run this test)')
    return _SHARED


@pytest.fixture(autouse=True)
def package_logs_propagate():
    """The package's loggers reach pytest's log capture.

    Importing ``launch`` (the launch_testing pytest plugins do, at start-up) makes every logger
    created afterwards a ``launch.logging.LaunchLogger``, which does not propagate to the root
    logger where caplog listens. Node processes never import it; in this process the package's
    loggers are set back to propagate.
    """
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if name.split('.')[0] == 'robot_vision' and isinstance(logger, logging.Logger):
            logger.propagate = True
    yield


@pytest.fixture
def artifacts_dir(request) -> Path:
    """A folder under artifacts/ named after the test, for images to look at after a run."""
    name = re.sub(r'[^A-Za-z0-9_.-]+', '_', request.node.name)
    path = ARTIFACTS / Path(request.node.fspath).stem / name
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def ros_domain(monkeypatch) -> int:
    """Give this test (and the subprocesses it starts) a DDS domain of its own, local-host only.

    Every process also gets config/fastdds_large_images.xml, as launch/robot_vision.launch.py gives the nodes,
    so camera images cross processes through shared memory instead of fragmented UDP.
    """
    domain = 1 + (os.getpid() * 7 + _domain_counter()) % 200
    monkeypatch.setenv('ROS_DOMAIN_ID', str(domain))
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    for variable in FASTDDS_PROFILE_VARIABLES:
        monkeypatch.setenv(variable, str(DDS_PROFILE))
    return domain


_counter = [0]


def _domain_counter() -> int:
    _counter[0] += 1
    return _counter[0]


def pytest_runtest_logreport(report):
    """Count passed tests, so that a run in which nothing passed can be failed."""
    global _passed
    if report.when == 'call' and report.passed:
        _passed += 1


def pytest_sessionfinish(session, exitstatus):
    """Fail a run in which no test passed (everything skipped or nothing collected)."""
    if exitstatus == 0 and _passed == 0:
        session.exitstatus = 1
        print('\nERROR: no test passed: every test was skipped or none was collected')
