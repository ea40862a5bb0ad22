"""Real RGB-D frames with ground-truth instance masks: the segmentation development set.

:func:`load_labelled_frames` reads every frame of ``real_clutter/`` in the shared data folder
(GraspNet-1Billion scene 0000, YCB-Video, the APC shelf bin; formats in its README) and the PCL
milk scene (one labelled object, the carton, whose mask is the set of scene points of ``milk.pcd``)
as :class:`LabelledFrame` rows: depth in metres, the gravity prior as ``camera_to_fixed`` where the
data gives one (fixed frame z up), the ground-truth instance image and, where known, the true
support plane in the camera frame.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from robot_vision.camera import decode_depth
from robot_vision.datasets import _read_png, _require, _shared, load_organized_pcd, load_pcd_points
from robot_vision.errors import InputError
from robot_vision.types import CameraIntrinsics, RGBDFrame

#: The sets of :func:`load_labelled_frames`, in report order.
REAL_SETS = ('graspnet_scene0000', 'ycb_video', 'apc_shelf_bin_b', 'pcl_milk')


@dataclass
class LabelledFrame:
    """One real frame with ground truth.

    ``name`` identifies the frame ('graspnet_scene0000/kinect/0016'); ``dataset`` is one of
    :data:`REAL_SETS`; ``frame`` carries the gravity prior in ``camera_to_fixed`` (None when the
    data has none); ``labels`` (H, W) int32: 0 background, one positive value per object;
    ``support_plane`` (4,) [a, b, c, d] of the true support in the camera frame (unit normal
    towards the camera), or None.
    """

    name: str
    dataset: str
    frame: RGBDFrame
    labels: np.ndarray
    support_plane: Optional[np.ndarray] = None

    def without_prior(self) -> LabelledFrame:
        """The same frame without its gravity prior (``camera_to_fixed`` None)."""
        return replace(self, frame=replace(self.frame, camera_to_fixed=None))


def _plane_from_fixed(camera_to_fixed: np.ndarray) -> np.ndarray:
    """The fixed frame's z = 0 plane expressed in the camera frame, normal towards the camera."""
    rotation, translation = camera_to_fixed[:3, :3], camera_to_fixed[:3, 3]
    normal = rotation.T @ np.array([0.0, 0.0, 1.0])  # fixed +z in camera coordinates
    # A camera point p has fixed height (R p + t)_z = normal . p + t_z.
    plane = np.r_[normal, translation[2]]
    return plane if plane[3] > 0 else -plane


def _intrinsics(matrix: np.ndarray, width: int, height: int) -> CameraIntrinsics:
    return CameraIntrinsics(width, height, float(matrix[0, 0]), float(matrix[1, 1]),
                            float(matrix[0, 2]), float(matrix[1, 2]))


def load_graspnet(root: Optional[Path] = None) -> List[LabelledFrame]:
    """GraspNet-1Billion scene 0000: 2 cameras x 2 views, 1280x720, prior = camera -> table."""
    from scipy.io import loadmat
    root = Path(root or _shared('real_clutter/graspnet_scene0000'))
    rows = []
    for camera in ('kinect', 'realsense'):
        base = root / camera
        poses = np.load(_require(base / 'camera_poses.npy'))
        cam0_to_table = np.load(_require(base / 'cam0_wrt_table.npy'))
        for depth_path in sorted((base / 'depth').glob('*.png')):
            view = depth_path.stem
            meta = loadmat(str(_require(base / 'meta' / f'{view}.mat')))
            depth_raw = _read_png(depth_path)
            intrinsics = _intrinsics(meta['intrinsic_matrix'], depth_raw.shape[1], depth_raw.shape[0])
            depth = decode_depth(depth_raw, scale=1.0 / float(meta['factor_depth'].squeeze()))
            to_table = cam0_to_table @ poses[int(view)]
            frame = RGBDFrame(intrinsics, color=_read_png(base / 'rgb' / f'{view}.png')[:, :, :3], depth=depth,
                              frame_id=f'{camera}_optical_frame', camera_to_fixed=to_table)
            labels = _read_png(base / 'label' / f'{view}.png').astype(np.int32)
            rows.append(LabelledFrame(f'graspnet_scene0000/{camera}/{view}', 'graspnet_scene0000', frame, labels,
                                      _plane_from_fixed(to_table)))
    return rows


def load_ycb_video(root: Optional[Path] = None) -> List[LabelledFrame]:
    """The three YCB-Video frames, 640x480, no gravity prior (the video's world frame is not gravity-aligned)."""
    from scipy.io import loadmat
    root = Path(root or _shared('real_clutter/ycb_video'))
    rows = []
    for depth_path in sorted(root.glob('*/*-depth.png')):
        stem = depth_path.name[:-len('-depth.png')]
        meta = loadmat(str(_require(depth_path.with_name(f'{stem}-meta.mat'))))
        depth_raw = _read_png(depth_path)
        intrinsics = _intrinsics(meta['intrinsic_matrix'], depth_raw.shape[1], depth_raw.shape[0])
        depth = decode_depth(depth_raw, scale=1.0 / float(meta['factor_depth'].squeeze()))
        color = _read_png(depth_path.with_name(f'{stem}-color.png'))[:, :, :3]
        labels = _read_png(depth_path.with_name(f'{stem}-label.png')).astype(np.int32)
        frame = RGBDFrame(intrinsics, color=np.ascontiguousarray(color), depth=depth)
        rows.append(LabelledFrame(f'ycb_video/{depth_path.parent.name}/{stem}', 'ycb_video', frame, labels))
    return rows


def _apc_matrices(text: str) -> List[np.ndarray]:
    """The numeric blocks of an APC ``cam.info.txt``, in file order (comment lines separate them)."""
    blocks, current = [], []
    for line in text.splitlines():
        if line.lstrip().startswith('#') or not line.strip():
            if current:
                blocks.append(np.array(current, np.float64))
                current = []
            continue
        current.append([float(v) for v in line.split()])
    if current:
        blocks.append(np.array(current, np.float64))
    return blocks


def load_apc_shelf(root: Optional[Path] = None) -> List[LabelledFrame]:
    """The APC shelf bin B: 15 views, 640x480, bit-rotated depth, prior = camera -> world (z up)."""
    root = Path(root or _shared('real_clutter/apc_shelf_bin_b'))
    blocks = _apc_matrices(_require(root / 'cam.info.txt').read_text(encoding='utf-8'))
    # colour K, depth K, depth->colour, bin->world, then one camera->world pose per frame.
    if len(blocks) < 5 or blocks[0].shape != (3, 3):
        raise InputError(f'{root / "cam.info.txt"}: expected intrinsics, extrinsics and camera poses')
    color_k, poses = blocks[0], blocks[4:]
    rows = []
    for index, depth_path in enumerate(sorted(root.glob('frame-*.depth.png'))):
        stem = depth_path.name[:-len('.depth.png')]
        packed = _read_png(depth_path).astype(np.uint32)
        raw = (((packed << 13) | (packed >> 3)) & 0xFFFF).astype(np.uint16)
        intrinsics = _intrinsics(color_k, raw.shape[1], raw.shape[0])
        frame = RGBDFrame(intrinsics, color=_read_png(root / f'{stem}.color.png')[:, :, :3],
                          depth=decode_depth(raw, scale=1e-4), frame_id='sr300_optical_frame',
                          camera_to_fixed=poses[index])
        labels = _read_png(root / 'segm' / f'{stem}.segm.png').astype(np.int32)
        rows.append(LabelledFrame(f'apc_shelf_bin_b/{stem}', 'apc_shelf_bin_b', frame, labels))
    return rows


def model_pixels(frame: RGBDFrame, model: np.ndarray) -> Tuple[np.ndarray, float]:
    """The frame's pixels that hold a model point, and the largest model-point-to-pixel distance.

    Returns an (H, W) bool mask of the pixels whose point is the nearest to some model point, and that
    distance in metres (0 when the model is an exact crop of the frame, as milk.pcd is).
    """
    from scipy.spatial import cKDTree
    from robot_vision.camera import deproject
    cloud = deproject(frame.depth, frame.intrinsics).reshape(-1, 3)
    finite = np.flatnonzero(np.isfinite(cloud[:, 2]))
    distance, nearest = cKDTree(cloud[finite]).query(model)
    mask = np.zeros(cloud.shape[0], bool)
    mask[finite[nearest]] = True
    return mask.reshape(frame.depth.shape), float(distance.max())


def load_pcl_milk(root: Optional[Path] = None) -> List[LabelledFrame]:
    """The PCL Kinect milk scene: one labelled object (the carton, the pixels of milk.pcd), no gravity prior."""
    root = Path(root or _shared('pcl_kinect'))
    frame = load_organized_pcd(root / 'milk_cartoon_all_small_clorox.pcd')
    carton, _ = model_pixels(frame, load_pcd_points(root / 'milk.pcd'))
    return [LabelledFrame('pcl_kinect/milk', 'pcl_milk', frame, carton.astype(np.int32))]


def load_labelled_frames(sets=REAL_SETS) -> List[LabelledFrame]:
    """Every labelled real frame of the named sets (default: all of :data:`REAL_SETS`)."""
    loaders = {'graspnet_scene0000': load_graspnet, 'ycb_video': load_ycb_video,
               'apc_shelf_bin_b': load_apc_shelf, 'pcl_milk': load_pcl_milk}
    unknown = [name for name in sets if name not in loaders]
    if unknown:
        raise InputError(f'unknown real set(s) {unknown}: expected some of {list(REAL_SETS)}')
    return [row for name in sets for row in loaders[name]()]


def _plane_error(found: Optional[np.ndarray], truth: Optional[np.ndarray]) -> Dict[str, float]:
    """Angle (degrees) between the normals and offset difference (metres) of two planes, or {}."""
    if found is None or truth is None:
        return {}
    cos = float(np.clip(abs(found[:3] @ truth[:3]), 0.0, 1.0))
    return {'plane_angle_deg': float(np.degrees(np.arccos(cos))), 'plane_offset_m': float(abs(found[3] - truth[3]))}


def evaluate_segmentation(frames: Sequence[LabelledFrame], settings, use_prior: bool = True,
                          progress: Optional[Callable[[str], None]] = None) -> Dict[str, Any]:
    """Segment every frame with ``settings`` and score it with :func:`frame_metrics`.

    ``use_prior``: keep each frame's gravity prior (False: drop it). Returns ``frames`` (one row per
    frame: name, set, size, ms, status and the metrics) and ``sets`` (per set and ``overall``:
    object recall and precision at IoU 0.5, merged / split / missed counts, the mean Overlap and
    Boundary measures per frame, median support-plane errors where the truth is known, and the
    median time per frame by image size).
    """
    import time
    from robot_vision.perception3d.instance_metrics import frame_metrics
    from robot_vision.perception3d.segmentation import segment_scene
    rows = []
    for labelled in frames:
        row_frame = labelled if use_prior else labelled.without_prior()
        start = time.perf_counter()
        seg = segment_scene(row_frame.frame, settings)
        elapsed = (time.perf_counter() - start) * 1e3
        metrics = frame_metrics(seg.objects.mask, labelled.labels)
        h, w = labelled.labels.shape
        rows.append({'name': labelled.name, 'set': labelled.dataset, 'size': f'{w}x{h}', 'ms': elapsed,
                     'status': seg.status, 'prior': row_frame.frame.camera_to_fixed is not None,
                     **metrics, **_plane_error(seg.plane, labelled.support_plane)})
        if progress is not None:
            progress(f'{labelled.name}: {metrics["matched"]}/{metrics["gt"]} objects, {elapsed:.0f} ms')
    sets: Dict[str, Any] = {}
    for name in [s for s in REAL_SETS if any(r['set'] == s for r in rows)] + ['overall']:
        chosen = [r for r in rows if name in ('overall', r['set'])]
        sets[name] = _summary(chosen)
    return {'frames': rows, 'sets': sets}


def _summary(rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    gt = sum(r['gt'] for r in rows)
    predicted = sum(r['scored_predictions'] for r in rows)
    matched = sum(r['matched'] for r in rows)
    out = {'frames': len(rows), 'objects': gt, 'recall': matched / gt if gt else float('nan'),
           'precision': matched / predicted if predicted else float('nan'),
           **{k: sum(r[k] for r in rows) for k in ('merged', 'split', 'missed', 'false_positives')}}
    for key in ('overlap_precision', 'overlap_recall', 'overlap_f', 'boundary_precision', 'boundary_recall',
                'boundary_f'):
        out[key] = float(np.mean([r[key] for r in rows]))
    for key in ('plane_angle_deg', 'plane_offset_m'):
        values = [r[key] for r in rows if key in r]
        if values:
            out[key] = float(np.median(values))
    for size in sorted({r['size'] for r in rows}):
        out[f'median_ms_{size}'] = float(np.median([r['ms'] for r in rows if r['size'] == size]))
    return out
