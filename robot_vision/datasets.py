"""Loaders for the real RGB-D captures used by tests, benchmarks and the demo.

Each loader returns an :class:`~robot_vision.types.RGBDFrame` with depth already decoded to
float32 metres (the three sources use three depth units: millimetres, 1/10000 m, 1/5000 m).
The captures live in the shared data folder (``../shared/data`` next to a checkout, or the
folder named by ``ROBOT_VISION_DATA``); a few small files are bundled in ``robot_vision/data``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

import numpy as np

from robot_vision.camera import decode_depth
from robot_vision.errors import InputError
from robot_vision.types import CameraIntrinsics, RGBDFrame

#: Intrinsics of each capture set, from ../shared/data/README.md.
PCL_KINECT_INTRINSICS = CameraIntrinsics(640, 480, 525.0, 525.0, 319.5, 239.5)
PCL_SEQUENCE_INTRINSICS = CameraIntrinsics(640, 480, 525.0, 525.0, 320.0, 240.0)
YCB_INTRINSICS = CameraIntrinsics(640, 480, 1066.778, 1067.487, 312.9869, 241.3109)
TUM_INTRINSICS = CameraIntrinsics(640, 480, 535.4, 539.2, 320.1, 247.6)

#: Metres per raw depth unit.
YCB_DEPTH_SCALE = 1e-4
TUM_DEPTH_SCALE = 2e-4
PCL_SEQUENCE_DEPTH_SCALE = 1e-3

BUNDLED_DATA = Path(__file__).resolve().parent / 'data'


def shared_data_dir() -> Optional[Path]:
    """Return the shared real-data folder, or None when it is not present."""
    candidates = [os.environ.get('ROBOT_VISION_DATA')]
    here = Path(__file__).resolve().parent.parent
    candidates += [str(here.parent / 'shared' / 'data'), str(Path.cwd().parent / 'shared' / 'data')]
    for candidate in candidates:
        if candidate and (Path(candidate) / 'pcl_kinect').is_dir():
            return Path(candidate)
    return None


def _require(path: Path) -> Path:
    if not path.is_file():
        raise InputError(f'data file not found: {path}')
    return path


def _read_png(path: Path) -> np.ndarray:
    import cv2
    image = cv2.imread(str(_require(path)), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InputError(f'could not decode image file {path}')
    if image.ndim == 3:
        image = np.ascontiguousarray(image[:, :, 2::-1])  # BGR(A) -> RGB
    return image


def load_pcd_points(path: Path) -> np.ndarray:
    """Load the x, y, z fields of a PCD file as an (N, 3) float32 array (organized order kept)."""
    from pypcd4 import PointCloud
    cloud = PointCloud.from_path(str(_require(Path(path))))
    return np.ascontiguousarray(cloud.numpy(('x', 'y', 'z')), dtype=np.float32)


def load_organized_pcd(path: Path, intrinsics: CameraIntrinsics = PCL_KINECT_INTRINSICS,
                       stamp: float = 0.0) -> RGBDFrame:
    """Load an organized PCD (x, y, z, rgba) as an RGB-D frame: depth is the z field."""
    from pypcd4 import PointCloud
    cloud = PointCloud.from_path(str(_require(Path(path))))
    if (cloud.metadata.height, cloud.metadata.width) != intrinsics.shape:
        raise InputError(f'{path}: expected an organized {intrinsics.width}x{intrinsics.height} '
                         f'cloud, got {cloud.metadata.width}x{cloud.metadata.height}')
    data = cloud.numpy(('z', 'rgba'))
    depth = decode_depth(data[:, 0].astype(np.float32).reshape(intrinsics.shape), scale=1.0)
    rgba = data[:, 1].astype(np.uint32).reshape(intrinsics.shape)
    color = np.stack([(rgba >> 16) & 255, (rgba >> 8) & 255, rgba & 255], axis=-1).astype(np.uint8)
    return RGBDFrame(intrinsics, color=color, depth=depth, stamp=stamp,
                     frame_id='kinect_rgb_optical_frame')


def load_ycb_frame(index: int, root: Optional[Path] = None) -> RGBDFrame:
    """Load YCB PoseCNN demo frame ``index`` (1..5): RGB + depth in 1/10000 m."""
    root = Path(root or _shared('ycb_posecnn'))
    color = _read_png(root / f'{index:06d}-color.png')[:, :, :3]
    depth = decode_depth(_read_png(root / f'{index:06d}-depth.png'), scale=YCB_DEPTH_SCALE)
    return RGBDFrame(YCB_INTRINSICS, color=np.ascontiguousarray(color), depth=depth,
                     stamp=float(index), frame_id='camera_color_optical_frame')


def load_tum_frame(root: Optional[Path] = None) -> RGBDFrame:
    """Load the TUM RGB-D frame: RGB + depth in 1/5000 m."""
    root = Path(root or _shared('tum_rgbd'))
    color = _read_png(root / 'TUM_color.png')[:, :, :3]
    depth = decode_depth(_read_png(root / 'TUM_depth.png'), scale=TUM_DEPTH_SCALE)
    return RGBDFrame(TUM_INTRINSICS, color=np.ascontiguousarray(color), depth=depth,
                     frame_id='camera_color_optical_frame')


def load_pcl_sequence(root: Optional[Path] = None) -> List[RGBDFrame]:
    """Load the 3-frame PCL Kinect sequence (RGB tiff + depth tiff in millimetres), stamped from names."""
    import tifffile
    root = Path(root or _shared('pcl_kinect/sequence'))
    frames = []
    depth_files = sorted(root.glob('frame_*_depth.tiff'))
    if not depth_files:
        raise InputError(f'no frame_*_depth.tiff files in {root}')
    for depth_path in depth_files:
        stem = depth_path.name[len('frame_'):-len('_depth.tiff')]
        stamp = _stamp_from_name(stem)
        color = tifffile.imread(_require(root / f'frame_{stem}_rgb.tiff'))
        depth = decode_depth(tifffile.imread(depth_path), scale=PCL_SEQUENCE_DEPTH_SCALE)
        frames.append(RGBDFrame(PCL_SEQUENCE_INTRINSICS, color=np.ascontiguousarray(color[:, :, :3]),
                                depth=depth, stamp=stamp, frame_id='kinect_rgb_optical_frame'))
    return frames


def load_ycb_model(name: str, root: Optional[Path] = None) -> np.ndarray:
    """Load a YCB point model (e.g. '003_cracker_box') as (N, 3) float32 metres in its own frame."""
    root = Path(root or _shared('ycb_posecnn/models'))
    return np.loadtxt(_require(root / f'{name}.xyz'), dtype=np.float32).reshape(-1, 3)


def _stamp_from_name(stem: str) -> float:
    """Parse '20121214T142255.814212' into seconds since the epoch (UTC)."""
    from datetime import datetime, timezone
    parsed = datetime.strptime(stem, '%Y%m%dT%H%M%S.%f').replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def _shared(sub: str) -> Path:
    root = shared_data_dir()
    if root is None:
        raise InputError('the shared RGB-D data folder was not found: set ROBOT_VISION_DATA '
                         'to the folder holding pcl_kinect/, ycb_posecnn/ and tum_rgbd/')
    return root / sub
