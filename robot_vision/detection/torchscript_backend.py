"""The ``torchscript`` backend: YOLO-format TorchScript models loaded with torch.jit.load."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from robot_vision.detection.base import TensorInfo, YoloDetector, register_detector
from robot_vision.errors import ConfigError, ModelError


def _set_threads(torch, intra: int, inter: int) -> None:
    """Apply the thread settings (0: keep torch's); torch fixes its inter-op pool at its first parallel work."""
    if intra:
        torch.set_num_threads(intra)
    if inter and inter != torch.get_num_interop_threads():
        try:
            torch.set_num_interop_threads(inter)
        except RuntimeError as exc:
            raise ConfigError(f'DetectorSettings.inter_op_num_threads: torch sets its inter-op thread count '
                              f'once per process, before any parallel work, and this process already runs '
                              f'{torch.get_num_interop_threads()}; got {inter} (set it to 0 or to that '
                              f'number): {exc}') from exc


def _frozen(torch, model):
    """``model`` frozen (weights inlined as constants, batch norms folded); as loaded where torch cannot.

    Not ``torch.jit.optimize_for_inference`` on top: its MKLDNN conversion made a YOLO-n-sized
    network 2x slower than freezing alone on the 2-core development machine (bench_detection).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            return torch.jit.freeze(model)
    except Exception:  # noqa: BLE001 - freezing is an optimisation: modules it rejects still run as loaded
        return model


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
    metadata, else 640x640; the model runs on ``settings.device``. The module is frozen
    (weights become constants, batch norms folded into convolutions) and runs under
    ``torch.inference_mode``. A traced export only runs
    at the size it was traced at: a failure at another size names that size when the metadata
    records it.
    """

    records_input_shape = False
    dry_runs = 2   # torch's profiling executor specialises and optimises the graph on the second run

    def _load(self, path: Path) -> Tuple[TensorInfo, Dict[str, str]]:
        import torch

        extra = {'config.txt': ''}
        try:
            self._device = torch.device(self.settings.device)
            with warnings.catch_warnings():  # torch 2.x marks TorchScript deprecated; it is what users export
                warnings.simplefilter('ignore', DeprecationWarning)
                model = torch.jit.load(str(path), map_location=self._device, _extra_files=extra).eval()
        except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError/ValueError/zip errors alike
            raise ModelError(f'cannot load TorchScript model {str(path)!r} (missing, corrupt or not a '
                             f'TorchScript archive): {str(exc).strip()}') from exc
        _set_threads(torch, self.settings.intra_op_num_threads, self.settings.inter_op_num_threads)
        dtype = np.float32
        params = list(model.parameters())
        if params and params[0].dtype == torch.float16:
            dtype = np.float16
        self._model = _frozen(torch, model)
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

    def _failure_hint(self, shape: Sequence[int]) -> str:
        imgsz = self.metadata.imgsz
        size = (int(shape[2]), int(shape[3]))
        if imgsz is None:
            return (f'. A traced TorchScript export runs only at the size it was traced at, which this file '
                    f'does not record (no imgsz metadata); if that is not {size[0]}x{size[1]} (HxW), set '
                    f'input_size to it and dynamic_shape to false')
        if tuple(imgsz) != size:
            return (f'. It was exported at {imgsz[0]}x{imgsz[1]} (HxW, the imgsz metadata) and a traced '
                    f'TorchScript export runs only at its export size, not {size[0]}x{size[1]}: set '
                    f'input_size to [{imgsz[0]}, {imgsz[1]}] and dynamic_shape to false (or export ONNX '
                    f'with dynamic=True for other sizes)')
        return ''

    def close(self) -> None:
        """Drop the TorchScript module."""
        self._model = None
