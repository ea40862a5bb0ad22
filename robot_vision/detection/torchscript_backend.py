"""The ``torchscript`` backend: YOLO-format TorchScript models loaded with torch.jit.load."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np

from robot_vision.detection.base import TensorInfo, YoloDetector, register_detector
from robot_vision.errors import ModelError


def _flatten(value: Any) -> List[Any]:
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _flatten(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _flatten(v)]
    return [value]


@register_detector('torchscript')
class TorchScriptDetector(YoloDetector):
    """Runs an Ultralytics-style TorchScript export (``format=torchscript``) with torch.jit.

    Metadata comes from the ``config.txt`` extra file that Ultralytics embeds (JSON). The input
    size is not recorded in TorchScript, so it is ``settings.input_size``, else the ``imgsz``
    metadata, else 640x640; the model runs on ``settings.device``.
    """

    def _load(self, path: Path) -> Tuple[TensorInfo, Dict[str, str]]:
        import torch

        extra = {'config.txt': ''}
        try:
            self._device = torch.device(self.settings.device)
            with warnings.catch_warnings():  # torch 2.x marks TorchScript deprecated; it is what users export
                warnings.simplefilter('ignore', DeprecationWarning)
                self._model = torch.jit.load(str(path), map_location=self._device, _extra_files=extra).eval()
        except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError/ValueError/zip errors alike
            raise ModelError(f'cannot load TorchScript model {str(path)!r} (missing, corrupt or not a '
                             f'TorchScript archive): {str(exc).strip()[:300]}') from exc
        if self.settings.num_threads:
            torch.set_num_threads(self.settings.num_threads)
        props: Dict[str, Any] = {}
        text = extra['config.txt']
        text = text.decode('utf-8', 'replace') if isinstance(text, bytes) else text
        if text.strip():
            try:
                props = json.loads(text)
            except ValueError as exc:
                raise ModelError(f'{path}: config.txt metadata is not JSON: {exc}') from exc
            if not isinstance(props, dict):
                raise ModelError(f'{path}: config.txt metadata: expected a JSON object, '
                                 f'got {type(props).__name__}')
        dtype = np.float32
        params = list(self._model.parameters())
        if params and params[0].dtype == torch.float16:
            dtype = np.float16
        # TorchScript records no input shape: batch and size are dynamic.
        return TensorInfo('images', (None, 3, None, None), dtype), props

    def _infer(self, blob: np.ndarray) -> List[np.ndarray]:
        import torch

        with torch.inference_mode():
            out = self._model(torch.from_numpy(blob).to(self._device))
        tensors = _flatten(out)
        if not all(isinstance(t, torch.Tensor) for t in tensors):
            raise ModelError(f'TorchScript model output: expected tensors (or tuples of them), got '
                             f'{[type(t).__name__ for t in tensors]}')
        return [t.detach().float().cpu().numpy() for t in tensors]

    def close(self) -> None:
        """Drop the TorchScript module."""
        self._model = None
