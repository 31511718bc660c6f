"""Names as people say them, and the area this assistant stands in (no broker: commands are shown).

Every entity answers to HA's friendly name, its own name without the device prefix, its device's
name, those with the area in front, and aliases from settings (``home.aliases``); a name that fits
several entities is asked about, never picked. A command that names no area acts in the
assistant's own area (``home.area``); one that names nothing acts on the one entity that fits.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from assistant.errors import ToolError
from assistant.home.control import HomeControl
from assistant.home.inventory import Inventory

P = "homeassistant"


def _light(object_id: str, name: str | None, device: str, area: str) -> tuple[str, dict[str, Any]]:
    return f"{P}/light/{object_id}/config", {
        "name": name, "command_topic": f"t/{object_id}/set", "state_topic": f"t/{object_id}",
        "unique_id": object_id,
        "device": {"identifiers": [object_id], "name": device, "suggested_area": area},
    }


def _climate(object_id: str, area: str) -> tuple[str, dict[str, Any]]:
    return f"{P}/climate/{object_id}/config", {
        "name": None, "temperature_command_topic": f"t/{object_id}/temp", "unique_id": object_id,
        "modes": ["heat", "off"], "mode_command_topic": f"t/{object_id}/mode",
        "device": {"identifiers": [object_id], "name": f"{area} Thermostat", "suggested_area": area},
    }


def _home(*configs: tuple[str, dict[str, Any]], **kwargs: Any) -> HomeControl:
    inventory = Inventory(None, debounce_s=0.0)
    for topic, payload in configs:
        inventory.handle_config(topic, json.dumps(payload).encode())
    return HomeControl(inventory, None, **kwargs)


def _targets(control: HomeControl, tool: str, **arguments: Any) -> list[str]:
    control.dry_run.clear()
    control.run(tool, arguments)
    return sorted({topic.split("/")[1] for topic, _ in control.dry_run})


LAMP = _light("lamp1", "Living Room Lamp", "Lamp", "Living Room")
"""The issue's example: entity "Living Room Lamp" on device "Lamp": HA calls it "lamp living room lamp"."""


def test_an_entity_answers_to_every_name_people_use() -> None:
    control = _home(LAMP, _light("ceiling", "Ceiling", "Kitchen", "Kitchen"))
    names = control.tools()[0].parameters["properties"]["name"]["enum"]
    for said in ("lamp living room lamp", "living room lamp", "lamp", "kitchen ceiling", "ceiling"):
        assert said in names, said
    assert "kitchen" not in names  # a device named after its room would shadow the room
    for said in ("lamp living room lamp", "living room lamp", "lamp", "the lamp"):
        assert _targets(control, "HassTurnOn", name=said) == ["lamp1"], said
    assert _targets(control, "HassTurnOn", name="lamp", area="living room") == ["lamp1"]
    assert _targets(control, "HassTurnOn", name="the lamp in the living room") == ["lamp1"]
    assert _targets(control, "HassTurnOff", name="ceiling") == ["ceiling"]


def test_a_name_that_fits_several_entities_is_asked_about() -> None:
    control = _home(LAMP, _light("lamp2", None, "Lamp", "Bedroom"))
    with pytest.raises(ToolError, match="Which one do you mean") as err:
        control.run("HassTurnOn", {"name": "lamp"})
    assert err.value.code == "ambiguous" and not control.dry_run
    assert _targets(control, "HassTurnOn", name="lamp", area="bedroom") == ["lamp2"]
    assert _targets(control, "HassTurnOn", name="bedroom lamp") == ["lamp2"]
    # standing in the bedroom, "the lamp" is the one here
    here = _home(LAMP, _light("lamp2", None, "Lamp", "Bedroom"), area="Bedroom")
    assert _targets(here, "HassTurnOn", name="lamp") == ["lamp2"]


def test_aliases_from_settings_name_entities_by_id_or_name() -> None:
    control = _home(LAMP, _light("ceiling", "Ceiling", "Kitchen", "Kitchen"),
                    aliases={"Big Light": "light.ceiling", "reading lamp": "living room lamp"})
    enum = control.tools()[0].parameters["properties"]["name"]
    assert {"big light", "reading lamp"} <= set(enum["enum"])
    assert enum["x-entity-domains"]["big light"] == "light"
    assert _targets(control, "HassTurnOn", name="big light") == ["ceiling"]
    assert _targets(control, "HassTurnOn", name="the reading lamp") == ["lamp1"]


def test_area_less_commands_act_in_the_assistants_area() -> None:
    lights = (LAMP, _light("ceiling", "Ceiling", "Kitchen", "Kitchen"),
              _light("spot", "Spot", "Kitchen", "Kitchen"))
    here = _home(*lights, area="kitchen")
    assert _targets(here, "HassTurnOff", domain="light") == ["ceiling", "spot"]
    assert _targets(here, "HassTurnOff", domain="light", area="living room") == ["lamp1"]
    area = here.tools()[0].parameters["properties"]["area"]
    assert area["x-satellite-area"] == "kitchen"
    # without an area of its own the old meaning stays: every light
    assert _targets(_home(*lights), "HassTurnOff", domain="light") == ["ceiling", "lamp1", "spot"]


def test_a_call_naming_nothing_acts_on_the_one_entity_that_fits_else_asks() -> None:
    one = _home(LAMP, _climate("hall", "Hallway"))
    assert _targets(one, "HassClimateSetTemperature", temperature=21) == ["hall"]
    two = _home(_climate("hall", "Hallway"), _climate("office", "Office"))
    with pytest.raises(ToolError, match="Which device") as err:
        two.run("HassClimateSetTemperature", {"temperature": 21})
    assert err.value.code == "no_target"
    standing = _home(_climate("hall", "Hallway"), _climate("office", "Office"), area="office")
    assert _targets(standing, "HassClimateSetTemperature", temperature=21) == ["office"]


def test_the_settings_reach_the_home_control_the_daemon_builds() -> None:
    from assistant.config import parse_settings
    from assistant.home.service import build_home

    settings = parse_settings("home:\n  area: Kitchen\n  aliases:\n    big light: light.ceiling\n")
    home = build_home(settings)
    for topic, payload in (LAMP, _light("ceiling", "Ceiling", "Kitchen", "Kitchen")):
        home.inventory.handle_config(topic, json.dumps(payload).encode())
    assert _targets(home.control, "HassTurnOn", name="big light") == ["ceiling"]
    assert _targets(home.control, "HassTurnOff", domain="light") == ["ceiling"]  # the kitchen only
    home.stop(timeout=0.1)


def test_each_site_acts_in_its_own_area_through_the_router() -> None:
    from assistant.tools.registry import ToolRegistry
    from assistant.tools.router import Router
    from assistant.types import ResultStatus, ToolCall

    house = (LAMP, _light("ceiling", "Ceiling", "Kitchen", "Kitchen"),
             _light("desk", "Desk", "Office", "Office"),
             _climate("hall", "Kitchen"), _climate("study", "Office"))
    # the box stands in the kitchen; satellites in the office and on the porch (no area set)
    control = _home(*house, area="kitchen", site_areas={"office": "Office", "porch": None})
    registry = ToolRegistry()
    registry.set_group("home", control.tools())
    router = Router(registry)

    def sent(site: str, tool: str, **arguments: Any) -> list[str]:
        control.dry_run.clear()
        result = router.call(ToolCall(tool, arguments), site=site)
        assert result.status is ResultStatus.OK, (site, tool, result)
        return sorted({topic.split("/")[1] for topic, _ in control.dry_run})

    try:
        for _ in range(2):
            assert sent("office", "HassTurnOn", domain="light") == ["desk"]
            assert sent("box", "HassTurnOn", domain="light") == ["ceiling"]
            assert sent("home-assistant", "HassTurnOff", domain="light") == ["ceiling"]  # not a satellite
            assert sent("office", "HassClimateSetTemperature", temperature=20) == ["study"]
            assert sent("box", "HassClimateSetTemperature", temperature=21) == ["hall"]
            assert sent("office", "HassTurnOff", domain="light", area="kitchen") == ["ceiling"]
            porch = router.call(ToolCall("HassTurnOn", {"domain": "light"}), site="porch")
            assert porch.error_code == "no_target" and "area" in porch.speech, porch  # never the whole home
        satellites_only = _home(*house, site_areas={"office": "Office"})
        assert satellites_only.tools()[0].parameters["properties"]["area"]["x-satellite-area"] == "office"
    finally:
        router.close()
