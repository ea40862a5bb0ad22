"""Fixtures of the perception3d tests: the PCL milk scene, its model, its carton mask; the real clutter sets."""

import pytest

from robot_vision.datasets import load_organized_pcd, load_pcd_points
from robot_vision.real_scenes import model_pixels


@pytest.fixture(scope='session')
def milk_frame(shared_data):
    """The organized Kinect scene (floor, milk carton, detergent and bleach bottles)."""
    return load_organized_pcd(shared_data / 'pcl_kinect' / 'milk_cartoon_all_small_clorox.pcd')


@pytest.fixture(scope='session')
def milk_model(shared_data):
    """milk.pcd: (13704, 3) float32, an exact crop of the scene (true pose: identity)."""
    return load_pcd_points(shared_data / 'pcl_kinect' / 'milk.pcd')


@pytest.fixture(scope='session')
def milk_gt(milk_frame, milk_model):
    """(480, 640) bool: scene pixels whose point coincides with a milk.pcd point (all match at 0 m)."""
    mask, distance = model_pixels(milk_frame, milk_model)
    assert distance < 1e-4, 'milk.pcd should be an exact crop of the scene'
    return mask


@pytest.fixture(scope='session')
def real_clutter(shared_data):
    """../shared/data/real_clutter (the labelled real sets); the test skips, saying so, when it is absent."""
    if not (shared_data / 'real_clutter').is_dir():
        pytest.skip('../shared/data/real_clutter is absent in this checkout')
    return shared_data / 'real_clutter'
