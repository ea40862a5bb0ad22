"""The ``onnx`` backend: YOLO-format ONNX models run by ONNX Runtime (CPU by default)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from robot_vision.detection.base import TensorInfo, YoloDetector, register_detector
from robot_vision.errors import ModelError

_DTYPES = {'tensor(float)': np.float32, 'tensor(float16)': np.float16, 'tensor(double)': np.float64}


@register_detector('onnx')
class OnnxDetector(YoloDetector):
    """Runs an Ultralytics-style ONNX export (detect, segment or end-to-end) with ONNX Runtime.

    ``settings.providers`` lists the execution providers in priority order; each must be
    available in the installed onnxruntime (ModelError listing the available ones otherwise).
    """

    def _load(self, path: Path) -> Tuple[TensorInfo, Dict[str, str]]:
        import onnxruntime as ort

        available = ort.get_available_providers()
        missing = [p for p in self.settings.providers if p not in available]
        if missing:
            raise ModelError(f'DetectorSettings.providers: {missing} not available in this onnxruntime '
                             f'{ort.__version__}; available providers: {available}')
        options = ort.SessionOptions()
        if self.settings.num_threads:
            options.intra_op_num_threads = self.settings.num_threads
        try:
            self._session = ort.InferenceSession(str(path), sess_options=options,
                                                 providers=list(self.settings.providers))
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own unrelated exception types
            raise ModelError(f'cannot load ONNX model {str(path)!r} (missing, corrupt or not an ONNX file): '
                             f'{str(exc).strip()[:300]}') from exc
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
        return [np.asarray(o, dtype=np.float32) for o in outputs]

    @property
    def providers(self) -> List[str]:
        """The execution providers the session actually uses."""
        return list(self._session.get_providers())

    def close(self) -> None:
        """Drop the ONNX Runtime session."""
        self._session = None
