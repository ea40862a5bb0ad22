"""Class names of a detector: from Ultralytics model metadata or a labels file, and the id -> name map."""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from robot_vision.errors import ConfigError, ModelError


@dataclass(frozen=True)
class ModelMetadata:
    """What an Ultralytics export records about the model (every field None when absent).

    ``names`` the class names by id; ``imgsz`` the export input (height, width) in pixels;
    ``stride`` the largest stride in pixels; ``task`` e.g. 'detect' or 'segment';
    ``end2end`` True for NMS-free (YOLOv10/YOLO26) heads; ``batch`` the export batch size.
    """

    names: Optional[List[str]] = None
    imgsz: Optional[Tuple[int, int]] = None
    stride: Optional[int] = None
    task: Optional[str] = None
    end2end: Optional[bool] = None
    batch: Optional[int] = None


def _literal(value: Any, key: str) -> Any:
    """Parse a metadata value: ONNX stores ``str(python_value)``, TorchScript config.txt stores JSON."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    for parse in (ast.literal_eval, json.loads):
        try:
            return parse(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    if key in ('task',):
        return text
    raise ModelError(f'model metadata {key!r}: expected a Python or JSON literal, got {text[:80]!r}')


def names_from_value(value: Any, what: str = 'names') -> List[str]:
    """Turn a names value into a list indexed by class id.

    ``value`` is a list of names, a {id: name} mapping (ids 0..n-1, int or numeric-string keys),
    or a string holding either as a Python or JSON literal (Ultralytics writes
    ``"{0: 'person', 1: 'bicycle'}"``). Raises ModelError when the ids are not 0..n-1.
    """
    value = _literal(value, what)
    if isinstance(value, Mapping):
        try:
            by_id = {int(k): str(v) for k, v in value.items()}
        except (TypeError, ValueError) as exc:
            raise ModelError(f'{what}: expected integer class ids as keys, got {list(value)[:5]}') from exc
        if sorted(by_id) != list(range(len(by_id))):
            raise ModelError(f'{what}: expected class ids 0..{len(by_id) - 1}, got {sorted(by_id)[:10]}')
        return [by_id[i] for i in range(len(by_id))]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    raise ModelError(f'{what}: expected a list or an {{id: name}} map, got {type(value).__name__}')


def parse_metadata(props: Mapping[str, Any]) -> ModelMetadata:
    """Read Ultralytics metadata (ONNX ``metadata_props`` strings or TorchScript ``config.txt`` JSON).

    Unknown keys are ignored; a malformed known key raises ModelError naming the key.
    """
    names = names_from_value(props['names'], 'model metadata names') if 'names' in props else None
    imgsz = None
    if 'imgsz' in props:
        size = _literal(props['imgsz'], 'imgsz')
        size = [size, size] if isinstance(size, int) else list(size)
        if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
            raise ModelError(f'model metadata imgsz: expected [height, width], got {props["imgsz"]!r}')
        imgsz = (int(size[0]), int(size[1]))
    stride = None
    if 'stride' in props:
        stride_value = _literal(props['stride'], 'stride')
        if isinstance(stride_value, (list, tuple)):
            stride_value = max(stride_value)
        if not isinstance(stride_value, (int, float)) or stride_value < 1:
            raise ModelError(f'model metadata stride: expected a positive integer, got {props["stride"]!r}')
        stride = int(stride_value)
    end2end = None
    if 'end2end' in props:
        flag = _literal(props['end2end'], 'end2end')
        if isinstance(flag, str):
            flag = flag.lower() == 'true'
        end2end = bool(flag)
    task = str(_literal(props['task'], 'task')) if 'task' in props else None
    batch = None
    if 'batch' in props:
        batch_value = _literal(props['batch'], 'batch')
        batch = int(batch_value) if isinstance(batch_value, (int, float)) else None
    return ModelMetadata(names=names, imgsz=imgsz, stride=stride, task=task, end2end=end2end, batch=batch)


def load_labels_file(path: str) -> List[str]:
    """Read class names from ``path``.

    Formats: ``.yaml``/``.yml`` (a list, an {id: name} map, or a mapping with a ``names`` key as in
    an Ultralytics dataset YAML), ``.json`` (the same shapes), anything else: one name per line
    (blank lines ignored, surrounding whitespace stripped). Raises ConfigError when the file is
    missing or unreadable, or holds no names.
    """
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f'labels_file: expected an existing file, got {str(path)!r}')
    try:
        text = file.read_text(encoding='utf-8')
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f'labels_file {str(path)!r}: cannot read it as UTF-8 text ({exc})') from exc
    suffix = file.suffix.lower()
    try:
        if suffix in ('.yaml', '.yml'):
            import yaml

            value = yaml.safe_load(text)
        elif suffix == '.json':
            value = json.loads(text)
        else:
            value = [line.strip() for line in text.splitlines() if line.strip()]
    except (ValueError, ImportError) as exc:
        raise ConfigError(f'labels_file {str(path)!r}: cannot parse it ({exc})') from exc
    except Exception as exc:  # noqa: BLE001 - yaml.YAMLError has no importable base without yaml
        raise ConfigError(f'labels_file {str(path)!r}: cannot parse it ({exc})') from exc
    if isinstance(value, Mapping) and 'names' in value:
        value = value['names']
    try:
        names = names_from_value(value, f'labels_file {str(path)!r}')
    except ModelError as exc:
        raise ConfigError(str(exc)) from exc
    if not names:
        raise ConfigError(f'labels_file {str(path)!r}: expected at least one class name, found none')
    return names


def label_map(names: Sequence[str]) -> Dict[int, str]:
    """Class id -> name, the content of a vision_msgs/LabelInfo ``class_map``."""
    return {i: str(name) for i, name in enumerate(names)}


def resolve_class_names(num_classes: Optional[int], metadata: ModelMetadata,
                        labels_file: str = '') -> List[str]:
    """Pick the class names for a model with ``num_classes`` outputs (None: not known yet).

    A ``labels_file`` wins over the metadata ``names``; with neither, names are 'class_<id>'.
    Raises ModelError when the chosen names do not match ``num_classes``.
    """
    if labels_file:
        names, source = load_labels_file(labels_file), f'labels_file {labels_file!r}'
    elif metadata.names is not None:
        names, source = metadata.names, 'the model metadata names'
    elif num_classes is not None:
        return [f'class_{i}' for i in range(num_classes)]
    else:
        return []
    if num_classes is not None and len(names) != num_classes:
        raise ModelError(f'class count mismatch: the model outputs {num_classes} class scores but '
                         f'{source} lists {len(names)} names')
    return list(names)
