"""ROS parameters <-> the core's settings dataclasses: declared with descriptors, validated, typos rejected.

Every leaf of :class:`~robot_vision.pipeline.PipelineSettings` becomes one parameter with a dotted
name (``segmentation.max_depth``, ``gripper.max_opening``, ...), declared with its default and a
description. Values are read once into a frozen settings object; a change that the settings'
validation rejects is refused by the on-set callback with the validation message. Parameter
overrides (from ``--params-file`` / launch) that match no declared parameter are an error, so a
typo in a YAML file never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Dict, Iterator, List, Tuple

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor, ParameterType, SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter

from robot_vision.errors import ConfigError
from robot_vision.pipeline import PipelineSettings

#: Parameters every rclpy node has, which are not settings.
_BUILTIN = {'use_sim_time', 'start_type_description_service'}


@dataclasses.dataclass(frozen=True)
class Leaf:
    """One declared parameter: its dotted name, default value and, for matrices, the original shape."""

    name: str
    default: Any
    shape: Tuple[int, ...] = ()


def _leaves(obj: Any, prefix: str = '') -> Iterator[Leaf]:
    for f in dataclasses.fields(obj):
        if not f.init:
            continue
        value = getattr(obj, f.name)
        name = prefix + f.name
        if dataclasses.is_dataclass(value):
            yield from _leaves(value, name + '.')
        elif name == 'object_models':
            yield Leaf(name, [f'{k}={v}' for k, v in value])
        elif isinstance(value, np.ndarray):
            yield Leaf(name, value.astype(float).reshape(-1).tolist(), value.shape)
        elif isinstance(value, tuple):
            yield Leaf(name, list(value))
        else:
            yield Leaf(name, value)


def settings_leaves(settings: PipelineSettings = PipelineSettings()) -> List[Leaf]:
    """All parameters of the pipeline settings, in declaration order."""
    return list(_leaves(settings))


def _descriptor(leaf: Leaf, prefix: str) -> ParameterDescriptor:
    default = leaf.default
    dynamic = default is None or (isinstance(default, list) and not default)
    text = f'robot_vision setting {leaf.name} (default {default!r}); see docs/ for units and meaning'
    return ParameterDescriptor(name=prefix + leaf.name, description=text, dynamic_typing=dynamic)


def declare_settings(node: Node, prefix: str = '') -> List[Leaf]:
    """Declare every settings parameter on ``node`` (under ``prefix``) and return the leaves."""
    leaves = settings_leaves()
    for leaf in leaves:
        value = leaf.default
        if isinstance(value, list) and not value:
            value = None  # an empty list has no parameter type: declare dynamically typed
        if value is None:
            node.declare_parameter(prefix + leaf.name, None, _descriptor(leaf, prefix))
        else:
            node.declare_parameter(prefix + leaf.name, value, _descriptor(leaf, prefix))
    return leaves


def settings_from_values(values: Dict[str, Any], leaves: List[Leaf]) -> PipelineSettings:
    """Build PipelineSettings from {dotted name: parameter value}; raises ConfigError when invalid."""
    nested: Dict[str, Any] = {}
    shapes = {leaf.name: leaf.shape for leaf in leaves}
    for name, value in values.items():
        if value is None:
            continue
        if hasattr(value, 'tolist'):
            value = value.tolist()
        if name == 'object_models':
            pairs = {}
            for item in value:
                key, sep, path = str(item).partition('=')
                if not sep or not key or not path:
                    raise ConfigError(f'object_models: expected entries "class=path/to/model.pcd", got {item!r}')
                pairs[key] = path
            value = pairs
        elif shapes.get(name):
            array = np.asarray(value, float)
            if array.size != int(np.prod(shapes[name])):
                raise ConfigError(f'{name}: expected {int(np.prod(shapes[name]))} numbers '
                                  f'(a {"x".join(map(str, shapes[name]))} matrix, row-major), got {array.size}')
            value = array.reshape(shapes[name]).tolist()
        cursor = nested
        parts = name.split('.')
        for part in parts[:-1]:
            cursor = cursor.setdefault(part, {})
        cursor[parts[-1]] = value
    return PipelineSettings.from_dict(nested)


def read_settings(node: Node, leaves: List[Leaf], prefix: str = '') -> PipelineSettings:
    """Read the declared parameters into a validated PipelineSettings."""
    values = {leaf.name: node.get_parameter(prefix + leaf.name).value for leaf in leaves}
    return settings_from_values(values, leaves)


def unknown_overrides(node: Node, extra_known: List[str] = ()) -> List[str]:
    """Return messages for parameter overrides given to the node that match no declared parameter."""
    # rclpy keeps the overrides from --params-file / launch in Node._parameter_overrides (Humble..Kilted).
    overrides = set(getattr(node, '_parameter_overrides', {}) or {})
    declared = set(node._parameters) | _BUILTIN | set(extra_known)
    problems = []
    for name in sorted(overrides - declared):
        close = difflib.get_close_matches(name, sorted(declared), n=1)
        hint = f' (did you mean {close[0]!r}?)' if close else ''
        problems.append(f'unknown parameter {name!r}{hint}')
    return problems


def validate_change(node: Node, leaves: List[Leaf], params: List[Parameter],
                    prefix: str = '') -> SetParametersResult:
    """On-set callback body: accept a change only if the resulting settings validate."""
    values = {leaf.name: node.get_parameter(prefix + leaf.name).value for leaf in leaves}
    for param in params:
        if param.name.startswith(prefix) and param.name[len(prefix):] in values:
            values[param.name[len(prefix):]] = (None if param.type_ == ParameterType.PARAMETER_NOT_SET
                                                else param.value)
    try:
        settings_from_values(values, leaves)
    except ConfigError as exc:
        return SetParametersResult(successful=False, reason=str(exc))
    return SetParametersResult(successful=True)
