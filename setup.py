"""ament_python build script for robot_vision; the version lives only in package.xml."""

import re
from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE_NAME = 'robot_vision'
HERE = Path(__file__).resolve().parent


def package_xml_version() -> str:
    """Return the <version> of package.xml, the single source of the version."""
    text = (HERE / 'package.xml').read_text(encoding='utf-8')
    match = re.search(r'<version>\s*([^<\s]+)\s*</version>', text)
    if match is None:
        raise RuntimeError('package.xml has no <version> element')
    return match.group(1)


def share(subdir: str, pattern: str = '*'):
    """Install every file matching ``subdir/pattern`` into share/robot_vision/subdir."""
    files = sorted(p for p in glob(f'{subdir}/{pattern}') if Path(p).is_file())
    return (f'share/{PACKAGE_NAME}/{subdir}', files)


setup(
    name=PACKAGE_NAME,
    version=package_xml_version(),
    packages=find_packages(exclude=['test', 'test.*', 'benchmarks', 'benchmarks.*']),
    package_data={PACKAGE_NAME: ['data/*', 'data/**/*']},
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE_NAME}']),
        (f'share/{PACKAGE_NAME}', ['package.xml']),
        share('launch'),
        share('config'),
        share('urdf'),
        share('sim/gazebo'),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='robot_vision maintainers',
    maintainer_email='maintainers@robot-vision.dev',
    description='RGB-D perception for grasping and navigation on ROS 2',
    license='Apache-2.0',
    # colcon test picks pytest from the 'test' extra (setuptools dropped tests_require); pyproject.toml's
    # addopts give every test a timeout, which needs pytest-timeout.
    extras_require={'test': ['pytest', 'pytest-timeout']},
    entry_points={
        'console_scripts': [
            'robot-vision = robot_vision.cli:main',
            'perception_node = robot_vision.ros.perception_node:main',
            'detector_node = robot_vision.ros.detector_node:main',
            'pose_estimator_node = robot_vision.ros.pose_estimator_node:main',
            'grasp_planner_node = robot_vision.ros.grasp_planner_node:main',
            'tracker_node = robot_vision.ros.tracker_node:main',
            'sim_camera_node = robot_vision.ros.sim_camera_node:main',
        ],
    },
)
