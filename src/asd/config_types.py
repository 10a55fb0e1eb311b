"""Type checks of a composed config before any data is read.

Hydra passes ``trainer.max_epochs=abc`` on as the string ``"abc"``; Lightning would then fail deep
inside its loop, minutes later. Each config node that builds a class is checked against that
class's constructor annotations, for the types a command line can get wrong (int, float, bool,
str, their optional and union forms, literals); other annotations are left to the class.
"""

from __future__ import annotations

import inspect
import types
import typing

import hydra
from omegaconf import DictConfig

from asd.data.audio import AudioConfig
from asd.data.features import FeatureConfig

#: Config nodes built by a class other than their ``_target_``'s constructor.
NESTED = {("data", "audio"): AudioConfig, ("data", "features"): FeatureConfig}
CHECKED_NODES = ("trainer", "model", "backend", "data")


class ConfigTypeError(TypeError):
    """A config value of the wrong type; the message names the key."""


def _matches(value, expected) -> bool:
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, option) for option in typing.get_args(expected))
    if origin is typing.Literal:
        return value in typing.get_args(expected)
    if expected is type(None):
        return value is None
    if expected is bool:
        return isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is str:
        return isinstance(value, str)
    return True  # containers, classes, callables: the class itself checks them


def _describe(expected) -> str:
    return str(expected).replace("typing.", "").replace("NoneType", "None")


def _constructor_hints(target) -> dict:
    constructor = target.__init__ if inspect.isclass(target) else target
    try:
        return typing.get_type_hints(constructor)
    except Exception:  # an annotation that cannot be resolved here: leave that class unchecked
        return {}


def _check_node(node: DictConfig, hints: dict, where: str) -> None:
    for key, value in node.items():
        if isinstance(key, str) and not key.startswith("_") and key in hints and not _matches(value, hints[key]):
            raise ConfigTypeError(f"{where}.{key}={value!r}: expected {_describe(hints[key])}")


def check_config_types(cfg: DictConfig) -> None:
    """Raise :class:`ConfigTypeError` naming the first key whose value has the wrong type."""
    for name in CHECKED_NODES:
        node = cfg.get(name)
        if not isinstance(node, DictConfig) or "_target_" not in node:
            continue
        _check_node(node, _constructor_hints(hydra.utils.get_object(node._target_)), name)
    for (parent, child), target in NESTED.items():
        node = cfg.get(parent, {}).get(child)
        if isinstance(node, DictConfig):
            _check_node(node, _constructor_hints(target), f"{parent}.{child}")
