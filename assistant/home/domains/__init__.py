"""One module per Home Assistant MQTT domain, and the registry that finds them.

Adding a domain: a module with a ``Domain`` subclass and ``DOMAIN = ...`` (see base.py),
one line in ``_MODULES`` below, and its tests. Everything else (discovery's validation,
the inventory's state tracking, the home tools, ``assistant home``) asks the registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from types import MappingProxyType

from assistant.home.domains.base import Command, Domain

_MODULES = (
    "alarm_control_panel",
    "binary_sensor",
    "button",
    "climate",
    "cover",
    "fan",
    "humidifier",
    "lawn_mower",
    "light",
    "lock",
    "number",
    "scene",
    "select",
    "sensor",
    "switch",
    "vacuum",
    "valve",
    "water_heater",
)

REGISTRY: Mapping[str, Domain] = MappingProxyType(
    {name: import_module(f"assistant.home.domains.{name}").DOMAIN for name in _MODULES}
)
"""Domain name -> its module's ``Domain``."""


def domain(name: str) -> Domain:
    """The Domain of ``name`` (KeyError when the assistant has no module for it)."""
    return REGISTRY[name]


__all__ = ["REGISTRY", "Command", "Domain", "domain"]
