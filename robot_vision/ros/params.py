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
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor, ParameterType, SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter

from robot_vision.detection import available_detectors
from robot_vision.errors import ConfigError
from robot_vision.pipeline import LIVE_SETTINGS, PipelineSettings
from robot_vision.ros.node_parameters import LIVE, check_value

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


def is_float(value: Any) -> bool:
    """Whether a default is a float (or a list of floats): such parameters are declared dynamically typed.

    So an integer (``max_depth: 2`` in YAML, ``-p``, ``ros2 param set``) is accepted; the checks on
    set and at configure still refuse anything but numbers.
    """
    if isinstance(value, list):
        return bool(value) and all(isinstance(v, float) for v in value)
    return isinstance(value, float)


def _descriptor(leaf: Leaf, prefix: str) -> ParameterDescriptor:
    default = leaf.default
    dynamic = default is None or (isinstance(default, list) and not default) or is_float(default)
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
    return [undeclared_message(name, sorted(declared)) for name in sorted(overrides - declared)]



_LIVE_TEXT = ('these apply at the next frame instead: ' + ', '.join(
    [f'{name}.*' if name in ('segmentation', 'registration') else name for name in LIVE_SETTINGS] + sorted(LIVE)))


def is_live(name: str) -> bool:
    """Whether a change of the parameter ``name`` can apply to the running pipeline at the next frame."""
    return name.split('.', 1)[0] in LIVE_SETTINGS or name in LIVE


def undeclared_message(name: str, declared: List[str]) -> str:
    """The refusal of a parameter name that the node does not declare, with a "did you mean"."""
    close = difflib.get_close_matches(name, sorted(declared), n=1)
    hint = f' (did you mean {close[0]!r}?)' if close else ''
    return f'unknown parameter {name!r}{hint}: robot_vision nodes declare every parameter they read'


@dataclasses.dataclass
class Change:
    """A parameter change that passed the checks: the settings it gives and the node values it sets."""

    settings: Optional[PipelineSettings]
    node_values: Dict[str, Any]


def review_change(node: Node, leaves: List[Leaf], table: Dict[str, Any], params: List[Parameter],
                  configured: bool) -> Tuple[SetParametersResult, Optional[Change]]:
    """On-set callback body: check every value and, on a configured node, whether it can apply live.

    Node parameters are checked with :func:`robot_vision.ros.node_parameters.check_value`, settings
    by building the resulting PipelineSettings (plus a known detector backend). On a configured node
    (inactive or active) only parameters read on every frame may change (:func:`is_live`); the others
    are refused with "needs reconfigure". Returns (result, the accepted change or None).
    """
    values = {leaf.name: node.get_parameter(leaf.name).value for leaf in leaves}
    problems: List[str] = []
    node_values: Dict[str, Any] = {}
    settings_changed = False
    for param in params:
        value = None if param.type_ == ParameterType.PARAMETER_NOT_SET else param.value
        if hasattr(value, 'tolist'):
            value = value.tolist()
        if param.name in values:
            values[param.name], settings_changed = value, True
        elif param.name in table:
            problem = check_value(param.name, value)
            if problem:
                problems.append(problem)
            node_values[param.name] = value
        elif param.name not in _BUILTIN:
            problems.append(undeclared_message(param.name, list(node._parameters)))
            continue
        if configured and param.name not in _BUILTIN and not is_live(param.name):
            problems.append(f'{param.name}: needs reconfigure: it is read when the node configures, so change it '
                            f'while the node is unconfigured (deactivate, cleanup, set it, configure, activate); '
                            f'{_LIVE_TEXT}')
    settings = None
    if settings_changed:
        try:
            settings = settings_from_values(values, leaves)
            known = available_detectors()
            if settings.detector.backend not in known:
                raise ConfigError(f'detector.backend: expected one of {known}, got {settings.detector.backend!r}')
        except ConfigError as exc:
            problems.append(str(exc))
    if problems:
        return SetParametersResult(successful=False, reason='; '.join(problems)), None
    return SetParametersResult(successful=True), Change(settings, node_values)
