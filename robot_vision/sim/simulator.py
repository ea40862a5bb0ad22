"""MuJoCo scene simulation: a simulated RGB-D camera with per-object ground truth, and scripted motion."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

from robot_vision.errors import InputError
from robot_vision.geometry import invert_transform, matrix_from_quaternion
from robot_vision.sim.noise import DepthNoise, apply_depth_noise
from robot_vision.sim.objects import CUP_BASE, bowl_wall
from robot_vision.sim.scene import SceneSpec
from robot_vision.types import CameraIntrinsics, Detections, Objects3D, RGBDFrame

#: MuJoCo cameras look along -z with y up; the optical frame looks along +z with y down.
MUJOCO_TO_OPTICAL = np.diag([1.0, -1.0, -1.0])


def import_mujoco():
    """Import mujoco with offscreen EGL rendering selected (unless MUJOCO_GL is already set)."""
    os.environ.setdefault('MUJOCO_GL', 'egl')
    import mujoco
    return mujoco


def intrinsics_from_fovy(fovy_deg: float, width: int, height: int) -> CameraIntrinsics:
    """Pinhole intrinsics of a MuJoCo camera with vertical field of view ``fovy_deg`` and square pixels.

    Pixel centres are at integer coordinates, so the principal point is ((W-1)/2, (H-1)/2).
    """
    fy = 0.5 * height / np.tan(np.deg2rad(fovy_deg) / 2)
    return CameraIntrinsics(width, height, fy, fy, (width - 1) / 2.0, (height - 1) / 2.0)


@dataclass
class GroundTruth:
    """Exact per-object state at the moment of a render (N objects, in ``SceneSpec.objects`` order).

    ``object_id`` (N,) int32 index into the scene's objects; ``name``/``kind``/``class_name``
    lists of str; ``class_id`` (N,) int32 (index into ``CLASS_NAMES``).
    ``pose_world`` (N, 4, 4): the object frame in the world, in the ``Objects3D`` convention
    (origin at the box centre, z the body axis closest to world up, x the longer remaining
    axis); ``pose_camera`` (N, 4, 4) the same in the camera optical frame; ``size`` (N, 3)
    metres along those x, y, z axes; ``body_pose_world`` (N, 4, 4) the MuJoCo body frame.
    ``mask`` (N, H, W) bool visible-pixel masks from segmentation rendering;
    ``visible_pixels`` (N,) int64; ``velocity_world`` (N, 3) m/s; ``model_points`` list of
    (M, 3) float64 surface samples in each object's ``pose_world`` frame (for ADD-S);
    ``camera_pose_world`` (4, 4) optical frame in the world; ``depth_clean`` (H, W) float32
    noise-free depth in metres (NaN where nothing was hit); ``stamp`` simulated seconds.
    """

    object_id: np.ndarray
    name: List[str]
    kind: List[str]
    class_name: List[str]
    class_id: np.ndarray
    pose_world: np.ndarray
    pose_camera: np.ndarray
    size: np.ndarray
    body_pose_world: np.ndarray
    mask: np.ndarray
    visible_pixels: np.ndarray
    velocity_world: np.ndarray
    model_points: List[np.ndarray]
    camera_pose_world: np.ndarray
    depth_clean: np.ndarray
    stamp: float

    def __len__(self) -> int:
        """Number of objects."""
        return len(self.object_id)

    @property
    def xyxy(self) -> np.ndarray:
        """(N, 4) float32 pixel boxes (x1, y1, x2, y2) around the visible masks; NaN rows when unseen."""
        boxes = np.full((len(self), 4), np.nan, np.float32)
        for i, mask in enumerate(self.mask):
            rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
            if len(rows):
                boxes[i] = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
        return boxes

    def detections(self, min_visible_pixels: int = 1) -> Detections:
        """Ground truth as 2D ``Detections`` (confidence 1, class ids, masks; ``tracker_id`` = object id).

        Objects with fewer than ``min_visible_pixels`` visible pixels are left out.
        """
        keep = self.visible_pixels >= max(1, int(min_visible_pixels))
        return Detections(xyxy=self.xyxy[keep], confidence=np.ones(int(keep.sum()), np.float32),
                          class_id=self.class_id[keep], mask=self.mask[keep],
                          tracker_id=self.object_id[keep].astype(np.int64))

    def objects(self, frame: str = 'camera') -> Objects3D:
        """Ground truth as ``Objects3D`` (every object, visible or not) in the ``'camera'`` or ``'world'`` frame.

        ``pose`` is ``pose_camera`` or ``pose_world``; ``size`` the box extent; ``centroid`` the
        box centre (not a mean of points); confidence 1; ``class_id``; ``detection_index`` the
        row of the object in :meth:`detections` (default ``min_visible_pixels``), -1 when unseen;
        ``mask`` the visible masks. No point clouds.
        """
        if frame not in ('camera', 'world'):
            raise InputError(f"GroundTruth.objects: expected frame 'camera' or 'world', got {frame!r}")
        pose = self.pose_camera if frame == 'camera' else self.pose_world
        visible = self.visible_pixels >= 1
        index = np.where(visible, np.cumsum(visible) - 1, -1).astype(np.int32)
        return Objects3D(pose=pose.copy(), size=self.size.copy(), centroid=pose[:, :3, 3].copy(),
                         confidence=np.ones(len(self), np.float32), class_id=self.class_id.copy(),
                         detection_index=index, mask=self.mask)


def canonical_frame(rotation_world_body: np.ndarray, extent) -> Tuple[np.ndarray, np.ndarray]:
    """Return (R_body_canonical (3, 3), size (3,)) of the Objects3D convention for a body.

    z: the body axis closest to world up (sign pointing up); x: the longer of the other two.
    """
    rotation = np.asarray(rotation_world_body)
    extent = np.asarray(extent, float)
    k = int(np.argmax(np.abs(rotation[2])))
    z = np.zeros(3)
    z[k] = np.sign(rotation[2, k]) or 1.0
    others = [i for i in range(3) if i != k]
    i = others[0] if extent[others[0]] >= extent[others[1]] else others[1]
    j = others[1] if i == others[0] else others[0]
    x = np.zeros(3)
    x[i] = 1.0
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=1), np.array([extent[i], extent[j], extent[k]])


def _surface_samples(obj, count: int = 600, seed: int = 0) -> np.ndarray:
    """Points on the object's surface in its body frame (metres)."""
    rng = np.random.default_rng(seed)
    if obj.kind == 'mesh':
        vertices, faces = np.asarray(obj.vertices), np.asarray(obj.faces)
        a, b, c = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
        area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
        tri = rng.choice(len(faces), count, p=area / area.sum())
        r1, r2 = rng.uniform(size=(2, count, 1))
        flip = (r1 + r2) > 1
        r1, r2 = np.where(flip, 1 - r1, r1), np.where(flip, 1 - r2, r2)
        return a[tri] + r1 * (b[tri] - a[tri]) + r2 * (c[tri] - a[tri])
    directions = rng.standard_normal((count, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    size = obj.geom_size
    if obj.kind == 'sphere':
        return directions * size[0]
    if obj.kind == 'ellipsoid':
        return directions * np.asarray(size)
    if obj.kind == 'box':
        # project onto the box surface along the dominant scaled axis
        scaled = directions / np.asarray(size)
        return directions / np.abs(scaled).max(axis=1, keepdims=True)
    if obj.kind == 'cup':  # the outer wall, the inner wall and the inside's bottom: an open cylinder
        r, h, wall = size
        angle = rng.uniform(-np.pi, np.pi, count)
        part = rng.integers(0, 3, count)
        radius = np.where(part == 0, r, np.where(part == 1, r - wall, (r - wall) * np.sqrt(rng.uniform(size=count))))
        z = np.where(part == 2, CUP_BASE - h, rng.uniform(-h, h, count))
        return np.stack([radius * np.cos(angle), radius * np.sin(angle), z], axis=1)
    if obj.kind == 'bowl':  # the outer and inner cone from the base's edge to the rim, and the inside's bottom
        r, h, wall = size
        tilt, base = bowl_wall(r, h)
        angle = rng.uniform(-np.pi, np.pi, count)
        part = rng.integers(0, 3, count)
        up = rng.uniform(0, 2 * h, count)
        radius = base + up * np.tan(tilt) - np.where(part == 1, wall, 0.0)
        radius = np.where(part == 2, base * np.sqrt(rng.uniform(size=count)), radius)
        z = np.where(part == 2, CUP_BASE - h, up - h)
        return np.stack([radius * np.cos(angle), radius * np.sin(angle), z], axis=1)
    if obj.kind == 'cylinder':
        r, h = size
        pts = rng.uniform(-1, 1, (count, 3))
        angle = rng.uniform(-np.pi, np.pi, count)
        side = rng.uniform(size=count) < (h / (h + r / 2))
        radius = np.where(side, r, r * np.sqrt(rng.uniform(size=count)))
        pts[:, 0], pts[:, 1] = radius * np.cos(angle), radius * np.sin(angle)
        pts[:, 2] = np.where(side, rng.uniform(-h, h, count), np.sign(pts[:, 2]) * h)
        return pts
    r, h = size   # capsule
    pts = directions * r
    pts[:, 2] += np.sign(pts[:, 2]) * rng.uniform(0, h, count)
    return pts


class SimCamera:
    """Offscreen MuJoCo renderer for one named camera: colour, linear depth and segmentation."""

    def __init__(self, model, camera_name: str = 'rgbd', width: int = 640, height: int = 480):
        """Create the renderer for ``camera_name`` of ``model`` at ``width x height`` pixels."""
        mujoco = import_mujoco()
        self._mujoco = mujoco
        self.model = model
        self.camera_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera_name)
        if self.camera_id < 0:
            raise InputError(f'SimCamera: the model has no camera named {camera_name!r}')
        self.intrinsics = intrinsics_from_fovy(float(model.cam_fovy[self.camera_id]), width, height)
        self._renderer = mujoco.Renderer(model, height=height, width=width)

    def pose_world(self, data) -> np.ndarray:
        """The optical frame (x right, y down, z forward) in the world, (4, 4) float64."""
        pose = np.eye(4)
        pose[:3, :3] = data.cam_xmat[self.camera_id].reshape(3, 3) @ MUJOCO_TO_OPTICAL
        pose[:3, 3] = data.cam_xpos[self.camera_id]
        return pose

    def render(self, data) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Render (colour (H, W, 3) uint8, depth (H, W) float32 m NaN=no hit, geom ids (H, W) int32 -1=none).

        Depth is the optical-axis (z) distance: the renderer linearises MuJoCo's reversed-Z
        depth buffer with the model's near/far planes; far-plane pixels become NaN.
        """
        renderer = self._renderer
        renderer.update_scene(data, camera=self.camera_id)
        color = renderer.render().copy()
        renderer.enable_depth_rendering()
        depth = renderer.render().copy()
        renderer.disable_depth_rendering()
        renderer.enable_segmentation_rendering()
        seg = renderer.render()
        renderer.disable_segmentation_rendering()
        far = self.model.vis.map.zfar * self.model.stat.extent
        depth[~(depth < 0.999 * far) | ~(depth > 0)] = np.nan
        geom = np.where(seg[..., 1] == int(self._mujoco.mjtObj.mjOBJ_GEOM), seg[..., 0], -1)
        return color, depth.astype(np.float32), geom.astype(np.int32)

    def close(self) -> None:
        """Free the GL context."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


class SimScene:
    """A generated scene loaded into MuJoCo: render RGB-D frames with ground truth and step physics.

    ``SimScene(spec, noise=DepthNoise(...))`` compiles ``spec.to_mjcf()``, lets the objects
    settle for ``spec.settings.settle_time`` seconds, and renders with the scene's camera.
    Use as a context manager or call :meth:`close` to free the renderer.
    """

    def __init__(self, spec: SceneSpec, noise: Optional[DepthNoise] = None, render: bool = True):
        """Build the model; ``noise`` None means exact depth; ``render=False`` skips the renderer."""
        if not isinstance(spec, SceneSpec):
            raise InputError(f'SimScene: expected a SceneSpec, got {type(spec).__name__}')
        mujoco = import_mujoco()
        self._mujoco = mujoco
        self.spec = spec
        self.noise = DepthNoise() if noise is None else noise
        self.model = mujoco.MjModel.from_xml_string(spec.to_mjcf())
        self.data = mujoco.MjData(self.model)
        body_kind = mujoco.mjtObj.mjOBJ_BODY
        self.body_ids = [mujoco.mj_name2id(self.model, body_kind, o.name) for o in spec.objects]
        self.qpos_adr = [int(self.model.jnt_qposadr[self.model.body_jntadr[b]]) for b in self.body_ids]
        self.qvel_adr = [int(self.model.jnt_dofadr[self.model.body_jntadr[b]]) for b in self.body_ids]
        self._geom_to_object = -np.ones(self.model.ngeom + 1, np.int64)
        for index, body in enumerate(self.body_ids):
            self._geom_to_object[np.flatnonzero(self.model.geom_bodyid == body)] = index
        self._points_body = [_surface_samples(o, seed=i) for i, o in enumerate(spec.objects)]
        self.frame_index = 0
        mujoco.mj_forward(self.model, self.data)
        self.settle(spec.settings.settle_time)
        self.data.time = 0.0
        self.camera: Optional[SimCamera] = None
        if render:
            self.camera = SimCamera(self.model, 'rgbd', spec.camera.width, spec.camera.height)

    # -- physics -----------------------------------------------------------------------------
    def settle(self, seconds: float) -> None:
        """Run physics with no scripted motion for ``seconds``, then zero all velocities."""
        for _ in range(int(round(seconds / self.model.opt.timestep))):
            self._mujoco.mj_step(self.model, self.data)
        self.data.qvel[:] = 0.0
        self._mujoco.mj_forward(self.model, self.data)

    def step(self, dt: float) -> float:
        """Advance the simulation by ``dt`` seconds; objects with a scripted velocity move at it.

        Returns the new simulated time in seconds.
        """
        if not (np.isfinite(dt) and dt >= 0):
            raise InputError(f'SimScene.step: expected dt >= 0 seconds, got {dt}')
        moving = [(i, np.asarray(o.velocity)) for i, o in enumerate(self.spec.objects)
                  if np.any(np.asarray(o.velocity) != 0)]
        for _ in range(int(round(dt / self.model.opt.timestep))):
            for i, velocity in moving:
                adr = self.qvel_adr[i]
                self.data.qvel[adr:adr + 3] = velocity
                self.data.qvel[adr + 3:adr + 6] = 0.0
            self._mujoco.mj_step(self.model, self.data)
        return float(self.data.time)

    def object_pose_world(self, index: int) -> np.ndarray:
        """The MuJoCo body pose of object ``index`` in the world, (4, 4) float64."""
        adr = self.qpos_adr[index]
        pose = np.eye(4)
        w, x, y, z = self.data.qpos[adr + 3:adr + 7]
        pose[:3, :3] = matrix_from_quaternion(np.array([x, y, z, w]))
        pose[:3, 3] = self.data.qpos[adr:adr + 3]
        return pose

    # -- rendering -----------------------------------------------------------------------------
    def render(self) -> Tuple[RGBDFrame, GroundTruth]:
        """Render the current state: (RGBDFrame with noisy depth, GroundTruth).

        The frame: colour (H, W, 3) uint8 RGB; depth (H, W) float32 metres (NaN invalid) with
        ``self.noise`` applied; intrinsics from the camera's fovy; ``camera_to_fixed`` the
        optical frame in the world; ``stamp`` the simulated time in seconds;
        ``frame_id`` 'camera_color_optical_frame'.
        """
        if self.camera is None:
            raise InputError('SimScene.render: this scene was built with render=False')
        color, depth_clean, geom = self.camera.render(self.data)
        intrinsics = self.camera.intrinsics
        depth = apply_depth_noise(depth_clean, intrinsics, self.noise, self.frame_index, color)
        self.frame_index += 1
        camera_pose = self.camera.pose_world(self.data)
        frame = RGBDFrame(intrinsics, color=color, depth=depth, stamp=float(self.data.time),
                          frame_id='camera_color_optical_frame', camera_to_fixed=camera_pose)
        return frame, self.ground_truth(geom, camera_pose, depth_clean)

    def ground_truth(self, geom: np.ndarray, camera_pose: np.ndarray,
                     depth_clean: np.ndarray) -> GroundTruth:
        """Assemble the GroundTruth from a geom-id image and the current physics state."""
        objects = self.spec.objects
        n = len(objects)
        instance = self._geom_to_object[np.where(geom >= 0, geom, self.model.ngeom)]
        masks = np.stack([instance == i for i in range(n)]) if n else np.zeros((0,) + geom.shape, bool)
        world_to_camera = invert_transform(camera_pose)
        pose_world, body_pose, sizes, points, velocity = [], [], [], [], []
        for i, obj in enumerate(objects):
            body = self.object_pose_world(i)
            rot_bc, size = canonical_frame(body[:3, :3], obj.extent)
            canon = body.copy()
            canon[:3, :3] = body[:3, :3] @ rot_bc
            pose_world.append(canon)
            body_pose.append(body)
            sizes.append(size)
            points.append(self._points_body[i] @ rot_bc)
            adr = self.qvel_adr[i]
            velocity.append(self.data.qvel[adr:adr + 3].copy())
        pose_world_a = np.asarray(pose_world).reshape(n, 4, 4)
        return GroundTruth(
            object_id=np.arange(n, dtype=np.int32), name=[o.name for o in objects],
            kind=[o.kind for o in objects], class_name=[o.class_name for o in objects],
            class_id=np.array([o.class_id for o in objects], np.int32), pose_world=pose_world_a,
            pose_camera=world_to_camera[None] @ pose_world_a, size=np.asarray(sizes).reshape(n, 3),
            body_pose_world=np.asarray(body_pose).reshape(n, 4, 4), mask=masks,
            visible_pixels=masks.reshape(n, -1).sum(1).astype(np.int64),
            velocity_world=np.asarray(velocity).reshape(n, 3), model_points=points,
            camera_pose_world=camera_pose, depth_clean=depth_clean, stamp=float(self.data.time))

    def close(self) -> None:
        """Free the renderer (safe to call twice)."""
        if self.camera is not None:
            self.camera.close()
            self.camera = None

    def __enter__(self) -> SimScene:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ['SimScene', 'SimCamera', 'GroundTruth', 'intrinsics_from_fovy', 'canonical_frame',
           'import_mujoco', 'MUJOCO_TO_OPTICAL']
