"""Settings of the learned detectors: model file, backend, thresholds and input size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Tuple

from robot_vision.errors import ConfigError


def _fail(name: str, expected: str, value: Any) -> None:
    raise ConfigError(f'DetectorSettings.{name}: expected {expected}, got {value!r}')


#: Values of ``DetectorSettings.execution_mode``.
EXECUTION_MODES = ('sequential', 'parallel')


@dataclass(frozen=True)
class DetectorSettings:
    """Configuration of a :class:`~robot_vision.detection.Detector` (validated on construction).

    Attributes (defaults in brackets):

    * ``model_path`` ['']: the model file (``.onnx`` for ``onnx``, ``.torchscript``/``.pt`` for
      ``torchscript``); unused by the ``depth`` backend.
    * ``backend`` ['onnx']: registry name of the backend (see ``available_detectors()``).
    * ``confidence_threshold`` [0.25]: minimum class score in [0, 1] for a candidate to be kept.
    * ``iou_threshold`` [0.45]: NMS suppresses a box whose IoU with a higher-scored box of the
      same class (any class when ``agnostic_nms``) exceeds this, in [0, 1].
    * ``max_detections`` [300]: at most this many detections per image, best first.
    * ``max_candidates`` [30000]: at most this many candidates (best first) enter NMS.
    * ``input_size`` [None]: network input (height, width) in pixels. None: take it from the
      model (a fixed input shape, else the ``imgsz`` metadata, else 640x640). A model with a fixed
      input shape rejects a different value (ModelError at load time).
    * ``dynamic_shape`` [None]: letterbox each image to the smallest multiple of ``stride`` that
      holds it scaled into ``input_size`` (e.g. 640x480 -> 640x480 instead of 640x640, a quarter
      less work), as Ultralytics' ``rect`` inference does. None: on exactly when the model
      declares a dynamic input height/width (an ONNX export with ``dynamic=True``); TorchScript
      records no input shape, so there it stays off unless set to True. False forces the square
      ``input_size``; True on a fixed-size ONNX model is a ModelError at load time.
    * ``stride`` [32]: the model's largest stride in pixels (from the ``stride`` metadata when the
      model has it); input sizes are rounded up to a multiple of it in ``dynamic_shape`` mode.
    * ``agnostic_nms`` [False]: run NMS across classes instead of per class.
    * ``labels_file`` ['']: class names, one per line, or a YAML/JSON list or {id: name} map
      (e.g. an Ultralytics dataset YAML with ``names``); overrides the model metadata.
    * ``providers`` [('CPUExecutionProvider',)]: ONNX Runtime execution providers in priority
      order; each must be available in the installed onnxruntime (ModelError otherwise).
    * ``intra_op_num_threads`` [0]: threads inside one operator, for ONNX Runtime and torch
      (``torch.set_num_threads``, process-wide); 0 keeps the library default (one per core).
    * ``inter_op_num_threads`` [0]: threads running independent operators at once, for ONNX
      Runtime with ``execution_mode`` 'parallel' and torch (``torch.set_num_interop_threads``,
      settable once per process); 0 keeps the library default.
    * ``execution_mode`` ['sequential']: ONNX Runtime runs the graph's operators one after the
      other ('sequential') or independent branches at once ('parallel').
    * ``allow_spinning`` [False]: let ONNX Runtime's worker threads busy-wait for work after each
      run (``session.intra_op.allow_spinning`` / ``session.inter_op.allow_spinning``). On is the
      ONNX Runtime default and can shave a little latency on an idle many-core machine; off,
      they sleep and leave the CPU to the rest of the node (tens of ms of CPU per frame).
    * ``memory_arena`` [True]: ONNX Runtime's CPU memory arena and memory-pattern planning
      (``enable_cpu_mem_arena`` / ``enable_mem_pattern``): buffers are reused between runs;
      off, each run allocates afresh (less resident memory when input sizes vary a lot).
    * ``device`` ['cpu']: torch device of the ``torchscript`` backend (e.g. 'cuda:0').
    * ``mask_threshold`` [0.5]: a mask pixel is on when its sigmoid(prototype combination)
      exceeds this, in (0, 1).
    * ``pad_value`` [114]: grey level (0-255) of the letterbox border, as Ultralytics trains with.
    * ``segmentation`` [None]: a ``robot_vision.perception3d.SegmentationSettings`` for the
      ``depth`` backend (None: its defaults).
    """

    model_path: str = ''
    backend: str = 'onnx'
    confidence_threshold: float = 0.25
    iou_threshold: float = 0.45
    max_detections: int = 300
    max_candidates: int = 30000
    input_size: Optional[Tuple[int, int]] = None
    dynamic_shape: Optional[bool] = None
    stride: int = 32
    agnostic_nms: bool = False
    labels_file: str = ''
    providers: Tuple[str, ...] = ('CPUExecutionProvider',)
    intra_op_num_threads: int = 0
    inter_op_num_threads: int = 0
    execution_mode: str = 'sequential'
    allow_spinning: bool = False
    memory_arena: bool = True
    device: str = 'cpu'
    mask_threshold: float = 0.5
    pad_value: int = 114
    segmentation: Optional[Any] = None

    def __post_init__(self) -> None:
        """Validate every field; raise ConfigError naming the field, expected and actual value."""
        for name in ('confidence_threshold', 'iou_threshold'):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
                _fail(name, 'a number in [0, 1]', value)
            object.__setattr__(self, name, float(value))
        if not isinstance(self.mask_threshold, (int, float)) or not 0.0 < float(self.mask_threshold) < 1.0:
            _fail('mask_threshold', 'a number in (0, 1)', self.mask_threshold)
        object.__setattr__(self, 'mask_threshold', float(self.mask_threshold))
        for name, low in (('max_detections', 1), ('max_candidates', 1), ('stride', 1),
                          ('intra_op_num_threads', 0), ('inter_op_num_threads', 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                _fail(name, f'an integer >= {low}', value)
        pad = self.pad_value
        if isinstance(pad, bool) or not isinstance(pad, int) or not 0 <= pad <= 255:
            _fail('pad_value', 'an integer in [0, 255]', self.pad_value)
        if self.input_size is not None:
            size = self.input_size
            if isinstance(size, int) and not isinstance(size, bool):
                size = (size, size)
            try:
                size = tuple(int(s) for s in size)
            except (TypeError, ValueError):
                _fail('input_size', '(height, width) in pixels or None', self.input_size)
            if len(size) != 2 or min(size) < 1:
                _fail('input_size', '(height, width) of positive pixels or None', self.input_size)
            object.__setattr__(self, 'input_size', size)
        for name in ('model_path', 'backend', 'labels_file', 'device'):
            if not isinstance(getattr(self, name), str):
                _fail(name, 'a string', getattr(self, name))
        if not self.backend:
            _fail('backend', 'a backend name such as onnx, torchscript or depth', self.backend)
        providers = self.providers
        if isinstance(providers, str):
            providers = (providers,)
        if not providers or not all(isinstance(p, str) and p for p in providers):
            _fail('providers', 'a non-empty list of ONNX Runtime provider names', self.providers)
        object.__setattr__(self, 'providers', tuple(providers))
        for name in ('agnostic_nms', 'allow_spinning', 'memory_arena'):
            if not isinstance(getattr(self, name), bool):
                _fail(name, 'a bool', getattr(self, name))
        if self.dynamic_shape is not None and not isinstance(self.dynamic_shape, bool):
            _fail('dynamic_shape', 'a bool, or None to follow the model', self.dynamic_shape)
        if self.execution_mode not in EXECUTION_MODES:
            _fail('execution_mode', f'one of {list(EXECUTION_MODES)}', self.execution_mode)
