"""The ``onnx`` backend: YOLO-format ONNX models run by ONNX Runtime (CPU by default)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from robot_vision.detection.base import TensorInfo, YoloDetector, register_detector
from robot_vision.detection.settings import DetectorSettings
from robot_vision.errors import ModelError

#: Session config keys of ONNX Runtime's worker spinning ("1": busy-wait after a run, "0": sleep).
SPINNING_KEYS = ('session.intra_op.allow_spinning', 'session.inter_op.allow_spinning')

_DTYPES = {'tensor(float)': np.float32, 'tensor(float16)': np.float16, 'tensor(double)': np.float64}


def session_options(settings: DetectorSettings):
    """The ``onnxruntime.SessionOptions`` for ``settings``: threads, execution mode, spinning, memory arena."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if settings.intra_op_num_threads:
        options.intra_op_num_threads = settings.intra_op_num_threads
    if settings.inter_op_num_threads:
        options.inter_op_num_threads = settings.inter_op_num_threads
    options.execution_mode = (ort.ExecutionMode.ORT_PARALLEL if settings.execution_mode == 'parallel'
                              else ort.ExecutionMode.ORT_SEQUENTIAL)
    for key in SPINNING_KEYS:
        options.add_session_config_entry(key, '1' if settings.allow_spinning else '0')
    options.enable_cpu_mem_arena = settings.memory_arena
    options.enable_mem_pattern = settings.memory_arena
    return options


@register_detector('onnx')
class OnnxDetector(YoloDetector):
    """Runs an Ultralytics-style ONNX export (detect, segment or end-to-end) with ONNX Runtime.

    ``settings.providers`` lists the execution providers in priority order; each must be
    available in the installed onnxruntime (ModelError listing the available ones otherwise).
    The session options come from the settings (:func:`session_options`): thread counts,
    execution mode, worker spinning (off by default) and the memory arena.
    """

    def _load(self, path: Path) -> Tuple[TensorInfo, Dict[str, str]]:
        import onnxruntime as ort

        available = ort.get_available_providers()
        missing = [p for p in self.settings.providers if p not in available]
        if missing:
            raise ModelError(f'DetectorSettings.providers: {missing} not available in this onnxruntime '
                             f'{ort.__version__}; available providers: {available}')
        try:
            self._session = ort.InferenceSession(str(path), sess_options=session_options(self.settings),
                                                 providers=list(self.settings.providers))
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own unrelated exception types
            raise ModelError(f'cannot load ONNX model {str(path)!r} (missing, corrupt or not an ONNX file): '
                             f'{str(exc).strip()}') from exc
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise ModelError(f'{path}: expected a model with one image input, got {len(inputs)} inputs '
                             f'{[i.name for i in inputs]}')
        item = inputs[0]
        if item.type not in _DTYPES:
            raise ModelError(f'{path}: expected a float image input, got {item.name!r} of type {item.type}')
        shape = tuple(s if isinstance(s, int) and s > 0 else None for s in item.shape)
        self._input_name = item.name
        props = dict(self._session.get_modelmeta().custom_metadata_map)
        return TensorInfo(item.name, shape, _DTYPES[item.type]), props

    def _infer(self, blob: np.ndarray) -> List[np.ndarray]:
        outputs = self._session.run(None, {self._input_name: blob})
        return [o if o.dtype == np.float32 else o.astype(np.float32) for o in outputs]

    @property
    def providers(self) -> List[str]:
        """The execution providers the session actually uses."""
        return list(self._session.get_providers())

    @property
    def session(self):
        """The ``onnxruntime.InferenceSession`` (its options: ``session.get_session_options()``)."""
        return self._session

    def close(self) -> None:
        """Drop the ONNX Runtime session."""
        self._session = None
