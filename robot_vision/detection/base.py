"""The detector interface, the backend registry, and the YOLO base of the ONNX/TorchScript backends."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Type

import numpy as np

from robot_vision.detection import yolo
from robot_vision.detection.labels import ModelMetadata, label_map, resolve_class_names
from robot_vision.detection.settings import DetectorSettings
from robot_vision.errors import ConfigError, InputError, ModelError
from robot_vision.types import Detections, RGBDFrame


class Detector(abc.ABC):
    """A 2D object detector / instance segmenter: one RGB-D frame in, :class:`Detections` out.

    ``detect`` reads ``frame.color`` ((H, W, 3) uint8 RGB), or ``frame.depth`` for backends with
    ``needs_depth``; boxes and masks are in pixels of that image. ``class_names[i]`` names
    ``class_id == i`` (class-agnostic backends return ``class_id == -1`` and no names).
    """

    @abc.abstractmethod
    def detect(self, frame: RGBDFrame) -> Detections:
        """Detect objects in ``frame``; raise InputError when the frame lacks the image this backend needs."""

    @property
    @abc.abstractmethod
    def class_names(self) -> List[str]:
        """Class names indexed by class id."""

    @property
    def needs_depth(self) -> bool:
        """True when ``detect`` reads ``frame.depth`` (and the camera intrinsics)."""
        return False

    @property
    def has_masks(self) -> bool:
        """True when the detections carry instance masks."""
        return False

    def label_map(self) -> Dict[int, str]:
        """Class id -> name, for vision_msgs/LabelInfo."""
        return label_map(self.class_names)

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op for backends holding nothing
        """Release the model and its runtime (the detector must not be used afterwards)."""

    def __enter__(self) -> Detector:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_REGISTRY: Dict[str, Type[Detector]] = {}


def register_detector(name: str) -> Callable[[Type[Detector]], Type[Detector]]:
    """Class decorator: make a :class:`Detector` subclass available to :func:`create_detector` as ``name``.

    The class is constructed as ``cls(settings)``. Registering a taken name raises ConfigError.
    """
    def decorate(cls: Type[Detector]) -> Type[Detector]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ConfigError(f'detector backend {name!r} is already registered by '
                              f'{_REGISTRY[name].__name__}')
        _REGISTRY[name] = cls
        return cls
    return decorate


def available_detectors() -> List[str]:
    """Names of the registered backends, sorted."""
    return sorted(_REGISTRY)


def create_detector(name: str, settings: Optional[DetectorSettings] = None) -> Detector:
    """Build the backend registered as ``name`` with ``settings`` (default settings when None).

    Raises ConfigError for an unknown name (listing the known ones) and ModelError/ConfigError
    from the backend when the model cannot be loaded.
    """
    if name not in _REGISTRY:
        raise ConfigError(f'detector backend: expected one of {available_detectors()}, got {name!r}')
    return _REGISTRY[name](settings if settings is not None else DetectorSettings(backend=name))


@dataclass(frozen=True)
class TensorInfo:
    """Name, shape (None for dynamic dims) and numpy dtype of a model input or output."""

    name: str
    shape: Tuple[Optional[int], ...]
    dtype: type = np.float32


class YoloDetector(Detector):
    """Shared logic of the YOLO-format backends: validation at load time, letterbox, decoding.

    Subclasses implement :meth:`_load` (returning the input description and the metadata
    strings) and :meth:`_infer` (a (B, 3, H, W) array in, the list of output arrays out).
    ``records_input_shape`` says whether the format declares its input height/width (None for a
    dynamic dimension) or records none at all (TorchScript); ``dry_runs`` is how many runs per
    input shape at load time it takes until the runtime has optimised the graph for that shape.
    """

    records_input_shape = True
    dry_runs = 1

    def __init__(self, settings: DetectorSettings) -> None:
        self.settings = settings
        path = Path(settings.model_path)
        if not settings.model_path:
            raise ConfigError(f'DetectorSettings.model_path: expected a model file for the '
                              f'{settings.backend!r} backend, got an empty string')
        if not path.is_file():
            raise ModelError(f'model file not found: expected an existing file, got {str(path)!r}')
        self._input, props = self._load(path)
        self.metadata = _metadata(props, path)
        self._check_input()
        self._size, self._rect = self._pick_input_size()
        self._stride = self.metadata.stride or settings.stride
        self._batch = self._input.shape[0] if isinstance(self._input.shape[0], int) else None
        # dry run at the square size, and in dynamic_shape mode at a 4:3 rectangle too, so that a
        # model that cannot take rectangular inputs fails here and not on the first frame
        shapes = [self._size]
        if self._rect:
            shapes.append(yolo.letterbox_shape((3, 4), self._size, self._stride, auto=True))
        for shape in dict.fromkeys(shapes):
            grey = yolo.to_blob([np.full(shape + (3,), settings.pad_value, np.uint8)] * (self._batch or 1),
                                self._input.dtype)
            for _ in range(self.dry_runs):
                outputs = self._run(grey, 'a dry run at load time')
        pred, protos = self._split(outputs)
        names_count = None
        if settings.labels_file or self.metadata.names is not None:
            names_count = len(resolve_class_names(None, self.metadata, settings.labels_file))
        layout, nc, nm = yolo.identify_layout(pred.shape, None if protos is None else protos.shape,
                                              names_count, self.metadata.end2end)
        self._names = resolve_class_names(nc, self.metadata, settings.labels_file)
        if nc is None and self._names:
            nc = len(self._names)
        self.decoder = yolo.YoloDecoder(
            layout, nc, nm, settings.confidence_threshold, settings.iou_threshold, settings.max_detections,
            settings.max_candidates, settings.agnostic_nms, settings.mask_threshold)

    # -- backend hooks -------------------------------------------------------------------------
    @abc.abstractmethod
    def _load(self, path: Path) -> Tuple[TensorInfo, Dict[str, str]]:
        """Load the model; return its image input and its metadata (key -> value)."""

    @abc.abstractmethod
    def _infer(self, blob: np.ndarray) -> List[np.ndarray]:
        """Run the model on a (B, 3, H_in, W_in) blob; return its outputs as numpy arrays."""

    # -- public API ------------------------------------------------------------------------------
    @property
    def class_names(self) -> List[str]:
        """Class names indexed by class id (from the labels file, the model metadata or 'class_<i>')."""
        return list(self._names)

    @property
    def has_masks(self) -> bool:
        """True for segmentation models (detections carry (N, H, W) masks)."""
        return self.decoder.has_masks

    @property
    def input_size(self) -> Tuple[int, int]:
        """Network input (height, width) in pixels (the upper bound in ``dynamic_shape`` mode)."""
        return self._size

    @property
    def dynamic_shape(self) -> bool:
        """True when each image is letterboxed to its own multiple-of-stride rectangle (``dynamic_shape``)."""
        return self._rect

    @property
    def layout(self) -> str:
        """The output layout found at load time (one of ``yolo.LAYOUT_*``)."""
        return self.decoder.layout

    def detect(self, frame: RGBDFrame) -> Detections:
        """Detect in ``frame.color`` ((H, W, 3) uint8 RGB); boxes/masks in its pixels."""
        if not isinstance(frame, RGBDFrame):
            raise InputError(f'detect: expected an RGBDFrame, got {type(frame).__name__}; use detect_image '
                             f'for a bare image')
        if frame.color is None:
            raise InputError('detect: the frame has no colour image (frame.color is None); this backend '
                             'needs an (H, W, 3) uint8 RGB image')
        return self.detect_image(frame.color)

    def detect_image(self, image: np.ndarray) -> Detections:
        """Detect in one (H, W, 3) uint8 RGB image; raise InputError for grayscale or non-uint8 images."""
        return self.detect_images([image])[0]

    def detect_images(self, images: Sequence[np.ndarray]) -> List[Detections]:
        """Detect in several (H, W, 3) uint8 RGB images, batched when the model's batch size allows."""
        boxes = [self._letterbox(yolo.check_rgb_image(image, f'image {i}')) for i, image in enumerate(images)]
        results: List[Detections] = []
        start = 0
        while start < len(boxes):
            shape = boxes[start].image.shape
            if self._batch is None:
                stop = start + 1
                while stop < len(boxes) and boxes[stop].image.shape == shape:
                    stop += 1
            else:
                stop = min(start + self._batch, len(boxes))
            chunk = [b.image for b in boxes[start:stop]]
            if self._batch is not None and len(chunk) < self._batch:
                chunk += [chunk[0]] * (self._batch - len(chunk))
            pred, protos = self._split(self._run(yolo.to_blob(chunk, self._input.dtype), 'inference'))
            for j in range(stop - start):
                results.append(self.decoder(pred[j], None if protos is None else protos[j], boxes[start + j],
                                            shape[:2]))
            start = stop
        return results

    # -- internals -----------------------------------------------------------------------------
    def _check_input(self) -> None:
        shape = self._input.shape
        if len(shape) != 4 or shape[1] not in (3, None):
            raise ModelError(f'model input {self._input.name!r}: expected an image tensor [B, 3, H, W], '
                             f'got shape {list(shape)}')

    def _pick_input_size(self) -> Tuple[Tuple[int, int], bool]:
        """The (square or upper-bound) input size, and whether inputs are letterboxed to rectangles."""
        fixed = self._input.shape[2:]
        requested = self.settings.input_size
        rect = self.settings.dynamic_shape
        if all(isinstance(s, int) for s in fixed):
            size = (int(fixed[0]), int(fixed[1]))
            if requested is not None and tuple(requested) != size:
                raise ModelError(f'DetectorSettings.input_size: the model has a fixed input of {size[0]}x'
                                 f'{size[1]} (HxW), got {requested[0]}x{requested[1]}; leave it unset')
            if rect:
                raise ModelError(f'DetectorSettings.dynamic_shape: the model has a fixed input of {size[0]}x'
                                 f'{size[1]} (HxW) and cannot take other shapes; export it with a dynamic '
                                 f'input size (Ultralytics: dynamic=True) or leave dynamic_shape unset')
            return size, False
        if rect is None:  # follow the model: on when it declares a dynamic height/width
            rect = self.records_input_shape
        if requested is not None:
            return tuple(requested), rect
        if self.metadata.imgsz is not None:
            return self.metadata.imgsz, rect
        return (640, 640), rect

    def _letterbox(self, image: np.ndarray) -> yolo.Letterbox:
        return yolo.letterbox(image, self._size, self._stride, self._rect, self.settings.pad_value)

    def _failure_hint(self, shape: Sequence[int]) -> str:
        """Advice appended to an inference failure on a (B, 3, H, W) input of ``shape`` ('' for none)."""
        return ''

    def _run(self, blob: np.ndarray, what: str) -> List[np.ndarray]:
        try:
            return self._infer(blob)
        except ModelError:
            raise
        except Exception as exc:  # noqa: BLE001 - runtime errors of onnxruntime/torch become ModelError
            hint = self._failure_hint(blob.shape)
            raise ModelError(f'{type(self).__name__} ({self.settings.model_path}): {what} failed on an '
                             f'input of shape {list(blob.shape)} {blob.dtype}; the model expects '
                             f'{list(self._input.shape)}{hint}. The runtime said: {str(exc).strip()}') from exc

    def _split(self, outputs: List[np.ndarray]) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        preds = [o for o in outputs if o.ndim == 3]
        protos = [o for o in outputs if o.ndim == 4]
        if len(preds) != 1 or len(protos) > 1 or len(preds) + len(protos) != len(outputs):
            raise ModelError(f'unknown output layout: expected one [B, C, N] output (plus one '
                             f'[B, nm, H/4, W/4] '
                             f'prototype output for segmentation), got outputs of shapes '
                             f'{[list(o.shape) for o in outputs]}')
        return preds[0], (protos[0] if protos else None)


def _metadata(props: Dict[str, str], path: Path) -> ModelMetadata:
    from robot_vision.detection.labels import parse_metadata

    try:
        return parse_metadata(props)
    except ModelError as exc:
        raise ModelError(f'{path}: {exc}') from exc
