"""Building frozen settings dataclasses from plain dicts (YAML), with unknown or mistyped keys as errors."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, Dict, Mapping, Type, TypeVar, Union

from robot_vision.errors import ConfigError

T = TypeVar('T')


def _allowed_types(annotation: Any) -> tuple:
    """Python types a value may have for a field annotation (best effort for simple annotations)."""
    origin = typing.get_origin(annotation)
    if origin is Union:
        return sum((_allowed_types(a) for a in typing.get_args(annotation)), ())
    if origin in (tuple, list, typing.Sequence):
        return (tuple, list)
    if origin in (dict, typing.Mapping, Mapping):
        return (dict,)
    if annotation is float:
        return (float, int)
    if annotation in (int, str, bool):
        return (annotation,)
    if annotation is type(None):
        return (type(None),)
    return (object,)


def dataclass_from_dict(cls: Type[T], data: Mapping[str, Any], where: str = '') -> T:
    """Build the frozen dataclass ``cls`` from ``data``; nested dataclass fields take nested dicts.

    Raises ConfigError naming the key path for unknown keys and values of the wrong type. Lists
    become tuples (settings dataclasses are frozen and hashable).
    """
    where = where or cls.__name__
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f'{where}: expected a mapping of settings, got {type(data).__name__}')
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f'{where}: unknown setting(s) {unknown}; valid keys are {sorted(fields)}')
    values: Dict[str, Any] = {}
    for key, value in data.items():
        annotation = hints.get(key, Any)
        path = f'{where}.{key}'
        nested = _dataclass_type(annotation)
        if nested is not None and isinstance(value, Mapping):
            custom = getattr(nested, 'from_dict', None)
            values[key] = custom(value) if custom is not None else dataclass_from_dict(nested, value, path)
            continue
        allowed = _allowed_types(annotation)
        if object not in allowed:
            if isinstance(value, bool) and bool not in allowed:
                raise ConfigError(f'{path}: expected {_type_text(annotation)}, got a boolean ({value})')
            if not isinstance(value, allowed):
                raise ConfigError(f'{path}: expected {_type_text(annotation)}, got {type(value).__name__} '
                                  f'({value!r})')
        values[key] = _freeze(value)
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f'{where}: {exc}') from exc


def _dataclass_type(annotation: Any):
    if dataclasses.is_dataclass(annotation):
        return annotation
    for arg in typing.get_args(annotation):
        if dataclasses.is_dataclass(arg):
            return arg
    return None


def _type_text(annotation: Any) -> str:
    return getattr(annotation, '__name__', None) or str(annotation).replace('typing.', '')


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return {k: _freeze(v) for k, v in value.items()}
    return value


def load_yaml_section(path: Union[str, Path], section: str) -> Dict[str, Any]:
    """Read ``section`` of a YAML file (e.g. the ``robot_vision`` key of config/*.yaml)."""
    import yaml
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f'config file not found: {path}')
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f'{path}: not valid YAML: {exc}') from exc
    if section not in document:
        raise ConfigError(f'{path}: expected a top-level {section!r} section, found {sorted(document)}')
    return document[section] or {}
