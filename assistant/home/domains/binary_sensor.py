"""binary_sensor: HA's mqtt/binary_sensor (payload_on/off through value_template)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from assistant.home.domains.base import Domain, on_off
from assistant.home.templates import render_value

if TYPE_CHECKING:
    from assistant.home.discovery import Entity

DEVICE_CLASSES = {
    "battery": "Battery",
    "battery_charging": "Charging",
    "carbon_monoxide": "Carbon monoxide",
    "cold": "Cold",
    "connectivity": "Connectivity",
    "door": "Door",
    "garage_door": "Garage door",
    "gas": "Gas",
    "heat": "Heat",
    "light": "Light",
    "lock": "Lock",
    "moisture": "Moisture",
    "motion": "Motion",
    "moving": "Moving",
    "occupancy": "Occupancy",
    "opening": "Opening",
    "plug": "Plug",
    "power": "Power",
    "presence": "Presence",
    "problem": "Problem",
    "running": "Running",
    "safety": "Safety",
    "smoke": "Smoke",
    "sound": "Sound",
    "tamper": "Tamper",
    "update": "Update",
    "vibration": "Vibration",
    "window": "Window",
}


class BinarySensor(Domain):
    name = "binary_sensor"
    required = ("state_topic",)
    device_classes = DEVICE_CLASSES

    def read_state(self, entity: Entity, text: str) -> dict[str, Any]:
        value = render_value(entity.config.get("value_template"), text)
        return {} if value == "" else {"state": on_off(entity, value)}


DOMAIN = BinarySensor()
