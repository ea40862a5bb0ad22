"""CDR bytes <-> rclpy messages <-> core arrays for replay; loads rclpy only when a codec is created.

The replay package itself imports without ROS (so ``compare`` and ``--help`` work anywhere and
the core stays ROS-free); :class:`MessageCodec` pulls in ``rclpy.serialization``, the message
packages and :mod:`robot_vision.ros.conversions` / :mod:`robot_vision.ros.outputs` on
construction. All message <-> core conversions are the ROS layer's own functions.
"""

from __future__ import annotations

import importlib
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from robot_vision.errors import InputError


class MessageCodec:
    """Decode bag messages into core values and encode result messages into CDR bytes."""

    def __init__(self) -> None:
        """Import rclpy's serializer, the message packages and the ROS conversion modules."""
        from rclpy.serialization import deserialize_message, serialize_message

        from robot_vision.ros import conversions, outputs
        self._deserialize = deserialize_message
        self._serialize = serialize_message
        self.conversions = conversions
        self.outputs = outputs
        self._classes: Dict[str, type] = {}

    # ------------------------------------------------------------------ generic
    def message_class(self, msgtype: str) -> type:
        """The rclpy message class of 'pkg/msg/Name' (InputError when the package is not installed)."""
        cls = self._classes.get(msgtype)
        if cls is None:
            parts = msgtype.split('/')
            if len(parts) != 3 or parts[1] != 'msg':
                raise InputError(f'message type: expected "pkg/msg/Name", got {msgtype!r}')
            try:
                cls = getattr(importlib.import_module(f'{parts[0]}.msg'), parts[2])
            except (ImportError, AttributeError) as exc:
                raise InputError(f'message type {msgtype}: its Python package is not installed ({exc})') from exc
            self._classes[msgtype] = cls
        return cls

    def decode(self, msgtype: str, data: bytes) -> Any:
        """Deserialize CDR ``data`` into an rclpy message of ``msgtype`` (InputError when malformed)."""
        cls = self.message_class(msgtype)
        try:
            return self._deserialize(data, cls)
        except Exception as exc:  # noqa: BLE001 - rclpy raises generic errors for bad CDR
            raise InputError(f'{msgtype}: could not deserialize {len(data)} bytes of CDR: {exc}') from exc

    def encode(self, msg: Any) -> bytes:
        """Serialize an rclpy message to CDR bytes."""
        return self._serialize(msg)

    @staticmethod
    def type_name(msg: Any) -> str:
        """'pkg/msg/Name' of an rclpy message instance."""
        module = type(msg).__module__.split('.')[0]
        return f'{module}/msg/{type(msg).__name__}'

    # ------------------------------------------------------------------ inputs
    def header(self, msg: Any) -> Tuple[float, str]:
        """(stamp seconds, frame id) of a message with a header."""
        return self.conversions.stamp_to_seconds(msg.header.stamp), msg.header.frame_id

    def color(self, msg: Any) -> np.ndarray:
        """(H, W, 3) uint8 RGB from an Image or CompressedImage."""
        return self.conversions.image_to_rgb(msg)

    def depth(self, msg: Any, scale: Optional[float] = None) -> np.ndarray:
        """(H, W) float32 metres (NaN invalid) from a depth Image or CompressedImage (compressedDepth)."""
        return self.conversions.image_to_depth(msg, scale)

    def intrinsics(self, msg: Any):
        """CameraIntrinsics of a CameraInfo."""
        return self.conversions.camera_info_to_intrinsics(msg)

    def transforms(self, msg: Any) -> List[Tuple[str, str, float, List[float], List[float]]]:
        """(parent, child, stamp s, translation xyz m, quaternion xyzw) of every transform in a TFMessage.

        Leading '/' of frame ids (a ROS 1 habit) are stripped.
        """
        out = []
        for t in msg.transforms:
            tr, q = t.transform.translation, t.transform.rotation
            out.append((t.header.frame_id.lstrip('/'), t.child_frame_id.lstrip('/'),
                        self.conversions.stamp_to_seconds(t.header.stamp), [tr.x, tr.y, tr.z],
                        [q.x, q.y, q.z, q.w]))
        return out

    # ------------------------------------------------------------------ outputs
    def result_messages(self, result: Any, color: Optional[np.ndarray], camera_to_fixed: Optional[np.ndarray],
                        overlay: Optional[np.ndarray] = None) -> List[Tuple[str, Any]]:
        """Every output message of a FrameResult (see robot_vision.ros.outputs.result_messages)."""
        return self.outputs.result_messages(result, color, camera_to_fixed, overlay)

    def overlay(self, color: np.ndarray, result: Any, camera_to_fixed: Optional[np.ndarray]) -> np.ndarray:
        """The annotated overlay image of a result (see robot_vision.ros.outputs.overlay_image)."""
        return self.outputs.overlay_image(color, result, camera_to_fixed)
