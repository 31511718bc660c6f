"""The per-domain modules (assistant/home/domains/): both directions of every conversion through
one helper, command templates rendered with HA's variables, colour emulation, HA's naming and
refusals, and the domains beyond the corpus (valve, humidifier, water heater, mower, vacuum)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from assistant.errors import ToolError
from assistant.home.control import HomeControl
from assistant.home.discovery import build_entity
from assistant.home.domains import REGISTRY
from assistant.home.domains.base import BrightnessScale, PositionRange, SpeedRange
from assistant.home.domains.color import hs_to_rgb, hs_to_xy, kelvin_to_hs
from assistant.home.inventory import Inventory


def _home(*configs: tuple[str, dict[str, Any]]) -> tuple[Inventory, HomeControl]:
    inventory = Inventory(None, debounce_s=0.0)
    for index, (component, config) in enumerate(configs):
        inventory.handle_config(f"homeassistant/{component}/e{index}/config", json.dumps(config).encode())
    return inventory, HomeControl(inventory)


def _sent(control: HomeControl, inventory: Inventory, intent: str, **args: Any) -> list[tuple[str, str]]:
    entity = inventory.entities()[0]
    return [(c.topic, c.payload) for c in control._commands(intent, entity, args)]


def _read(inventory: Inventory, topic: str, payload: str) -> dict[str, Any]:
    entity = inventory.entities()[0]
    out: dict[str, Any] = {}
    for state_topic, reader in REGISTRY[entity.domain].readers(entity):
        if state_topic == topic:
            out.update(reader(entity, payload))
    return out


# ------------------------------------------------------------------ conversions, both ways


@pytest.mark.parametrize(("low", "high"), [(1, 100), (5, 100), (1, 3), (1, 4), (1, 254), (3, 7)])
def test_a_fan_speed_reads_back_as_the_percentage_that_was_sent(low: int, high: int) -> None:
    speeds = SpeedRange(low, high)
    for pct in range(1, 101):
        raw = speeds.to_device(pct)
        assert low <= raw <= high
        back = speeds.to_percent(raw)
        assert back is not None
        assert speeds.to_device(back) == raw  # the same device speed again: no drift


def test_a_fan_with_speed_range_min_5_set_to_1_percent_publishes_5_and_reads_1_percent() -> None:
    inventory, control = _home(
        (
            "fan",
            {
                "name": "Fan",
                "cmd_t": "f/set",
                "pct_cmd_t": "f/pct",
                "pct_stat_t": "f/pct/state",
                "spd_rng_min": 5,
            },
        )
    )
    assert _sent(control, inventory, "HassFanSetSpeed", percentage=1) == [("f/pct", "5")]
    assert _read(inventory, "f/pct/state", "5") == {"percentage": 1}
    assert _read(inventory, "f/pct/state", "100") == {"percentage": 100}


def test_positions_and_brightness_convert_both_ways() -> None:
    for closed, opened in ((0, 100), (100, 0), (0, 255), (10, 90)):
        rng = PositionRange(closed, opened)
        for pct in (0, 1, 40, 99, 100):
            assert abs(rng.to_percent(rng.to_device(pct)) - pct) <= 1
    for scale in (100, 254, 255, 1000):
        bri = BrightnessScale(scale)
        for pct in (1, 10, 50, 99, 100):
            assert abs(bri.to_percent(bri.to_device(pct)) - pct) <= 1
    assert BrightnessScale(254).to_device(50) == 127 and BrightnessScale(255).to_device(50) == 128


# ------------------------------------------------------------------ templates with HA's variables


def test_cover_set_position_template_gets_position_and_value() -> None:
    inventory, control = _home(
        (
            "cover",
            {
                "name": "Blind",
                "cmd_t": "c/set",
                "set_pos_t": "c/set",
                "set_pos_tpl": '{"position": {{ position }}, "raw": {{ value }}, "id": "{{ entity_id }}"}',
                "pos_open": 0,
                "pos_clsd": 200,
            },
        )
    )
    ((topic, payload),) = _sent(control, inventory, "HassSetPosition", position=40)
    assert topic == "c/set"
    assert json.loads(payload) == {"position": 40, "raw": 120, "id": "cover.blind"}


def test_fan_percentage_template_maps_the_speed_to_a_word() -> None:
    inventory, control = _home(
        (
            "fan",
            {
                "name": "Fan",
                "cmd_t": "f/s",
                "pct_cmd_t": "f/mode",
                "spd_rng_max": 4,
                "pct_cmd_tpl": "{{ {0:'off', 1:'low', 2:'medium', 3:'high', 4:'on'}[value] | default('') }}",
            },
        )
    )
    assert _sent(control, inventory, "HassFanSetSpeed", percentage=50) == [("f/mode", "medium")]
    assert _sent(control, inventory, "HassFanSetSpeed", percentage=100) == [("f/mode", "on")]


def test_zigbee2mqtt_thermostat_with_text_limits_and_a_mode_table() -> None:
    inventory, control = _home(
        (
            "climate",
            {
                "name": None,
                "min_temp": "5",
                "max_temp": "30",
                "temp_step": 0.5,
                "temperature_command_topic": "z/set/occupied_heating_setpoint",
                "mode_command_topic": "z/set",
                "modes": ["off", "heat", "auto"],
                "mode_command_template": "{% set values = {'auto':'schedule','heat':'manual','off':'pause'}"
                " %}"
                '{"operating_mode": "{{ values[value] if value in values.keys() else \'pause\' }}"}',
                "device": {"identifiers": ["z"], "name": "Radiator"},
            },
        )
    )
    assert inventory.entities()[0].config["min_temp"] == 5
    assert _sent(control, inventory, "HassTurnOn") == [("z/set", '{"operating_mode": "manual"}')]
    assert _sent(control, inventory, "HassTurnOff") == [("z/set", '{"operating_mode": "pause"}')]
    assert _sent(control, inventory, "HassClimateSetTemperature", temperature=21) == [
        ("z/set/occupied_heating_setpoint", "21.0")
    ]
    assert _sent(control, inventory, "HassClimateSetMode", mode="auto") == [
        ("z/set", '{"operating_mode": "schedule"}')
    ]
    with pytest.raises(ToolError) as err:
        _sent(control, inventory, "HassClimateSetTemperature", temperature=31)
    assert err.value.code == "out_of_range"


def test_a_failing_command_template_refuses_instead_of_sending_garbage() -> None:
    inventory, control = _home(
        ("switch", {"name": "Plug", "cmd_t": "p/set", "cmd_tpl": "{{ value.nope() }}"})
    )
    with pytest.raises(ToolError):
        _sent(control, inventory, "HassTurnOn")


# ------------------------------------------------------------------ colour emulation


def test_kelvin_to_colour_equals_home_assistants_numbers() -> None:
    hue, sat = kelvin_to_hs(2700)
    assert (hue, sat) == (28.395, 65.723)
    assert hs_to_rgb(hue, sat) == (255, 167, 87)
    assert hs_to_xy(hue, sat) == (0.525, 0.388)


@pytest.mark.parametrize(
    ("modes", "expected"),
    [
        (["color_temp"], {"state": "ON", "color_temp": 370}),
        (["xy"], {"state": "ON", "color": {"x": 0.525, "y": 0.388}}),
        (["rgb"], {"state": "ON", "color": {"r": 255, "g": 167, "b": 87}}),
        (["hs"], {"state": "ON", "color": {"h": 28.395, "s": 65.723}}),
        (["brightness"], {"state": "ON"}),
    ],
)
def test_json_light_colour_temperature_per_colour_mode(modes: list[str], expected: dict[str, Any]) -> None:
    inventory, control = _home(
        ("light", {"name": "L", "schema": "json", "cmd_t": "l/set", "brightness": True, "sup_clrm": modes})
    )
    ((_, payload),) = _sent(control, inventory, "HassLightSet", color_temp=2700)
    assert json.loads(payload) == expected


def test_tasmota_on_command_type_brightness_and_hs_emulation() -> None:
    inventory, control = _home(
        (
            "light",
            {
                "name": "RGB",
                "cmd_t": "cmnd/t/POWER",
                "bri_cmd_t": "cmnd/t/Dimmer",
                "bri_scl": 100,
                "on_cmd_type": "brightness",
                "hs_cmd_t": "cmnd/t/HSBColor",
            },
        )
    )
    assert _sent(control, inventory, "HassTurnOn") == [("cmnd/t/Dimmer", "100")]
    assert _sent(control, inventory, "HassLightSet", color_temp=2700) == [
        ("cmnd/t/HSBColor", "28.395,65.723"),
        ("cmnd/t/Dimmer", "100"),
    ]
    assert _sent(control, inventory, "HassTurnOff") == [("cmnd/t/POWER", "OFF")]


# ------------------------------------------------------------------ naming and refusals


def test_no_name_but_a_device_class_is_named_like_home_assistant() -> None:
    device = {"identifiers": ["w"], "name": "weather_sensor"}
    pressure = build_entity(
        "sensor", {"stat_t": "w", "dev_cla": "atmospheric_pressure", "dev": device}, key="a"
    )
    identify = build_entity("button", {"cmd_t": "w/i", "dev_cla": "identify", "dev": device}, key="b")
    named = build_entity(
        "sensor", {"name": None, "stat_t": "w", "dev_cla": "battery", "dev": device}, key="c"
    )
    assert pressure.name == "weather_sensor Atmospheric pressure"
    assert identify.name == "weather_sensor Identify"
    assert named.name == "weather_sensor"  # name null: the device's name, as HA


def test_a_device_class_home_assistant_refuses_is_refused() -> None:
    with pytest.raises(ValueError, match="device class"):
        build_entity("number", {"cmd_t": "n", "dev_cla": "temperature_delta"}, key="n")
    with pytest.raises(ValueError, match="min_temp"):
        build_entity("climate", {"temp_cmd_t": "t", "min_temp": "warm"}, key="t")


# ------------------------------------------------------------------ the other domains


def test_valve_humidifier_water_heater_mower_vacuum() -> None:
    inventory, control = _home(("valve", {"name": "Tap", "cmd_t": "v/set", "pos": True}))
    assert _sent(control, inventory, "HassSetPosition", position=30) == [("v/set", "30")]
    assert _sent(control, inventory, "HassTurnOff") == [("v/set", "0")]
    inventory, control = _home(
        (
            "humidifier",
            {
                "name": "Hum",
                "cmd_t": "h/set",
                "hum_cmd_t": "h/hum",
                "mode_cmd_t": "h/mode",
                "modes": ["eco", "boost"],
                "min_hum": 30,
            },
        )
    )
    assert _sent(control, inventory, "HassHumidifierSetpoint", humidity=45) == [("h/hum", "45")]
    assert _sent(control, inventory, "HassHumidifierMode", mode="Boost") == [("h/mode", "boost")]
    with pytest.raises(ToolError):
        _sent(control, inventory, "HassHumidifierSetpoint", humidity=20)
    inventory, control = _home(("water_heater", {"name": "Boiler", "temp_cmd_t": "w/t", "mode_cmd_t": "w/m"}))
    assert _sent(control, inventory, "HassClimateSetTemperature", temperature=50) == [("w/t", "50.0")]
    assert _sent(control, inventory, "HassTurnOff") == [("w/m", "off")]
    inventory, control = _home(
        ("lawn_mower", {"name": "Mower", "strt_mow_cmd_t": "m/start", "dock_cmd_t": "m/dock"})
    )
    assert _sent(control, inventory, "HassLawnMowerStartMowing") == [("m/start", "start_mowing")]
    assert _sent(control, inventory, "HassLawnMowerDock") == [("m/dock", "dock")]
    inventory, control = _home(("vacuum", {"name": "Robot", "cmd_t": "r/cmd"}))
    assert _sent(control, inventory, "HassVacuumStart") == [("r/cmd", "start")]
    assert _sent(control, inventory, "HassVacuumReturnToBase") == [("r/cmd", "return_to_base")]
    tools = {t.name for t in control.tools()}
    assert {"HassVacuumStart", "HassVacuumReturnToBase", "HassGetState"} <= tools


def test_number_select_and_presets() -> None:
    inventory, control = _home(
        ("number", {"name": "Target", "cmd_t": "n/set", "min": "10", "max": 20, "step": 1})
    )
    assert _sent(control, inventory, "HassSetValue", value=15) == [("n/set", "15")]
    with pytest.raises(ToolError):
        _sent(control, inventory, "HassSetValue", value=25)
    inventory, control = _home(("select", {"name": "Mode", "cmd_t": "s/set", "ops": ["Quiet", "Turbo"]}))
    assert _sent(control, inventory, "HassSelectOption", option="turbo") == [("s/set", "Turbo")]
    tool = next(t for t in control.tools() if t.name == "HassSelectOption")
    assert tool.parameters["properties"]["option"]["enum"] == ["Quiet", "Turbo"]
    inventory, control = _home(
        ("fan", {"name": "Fan", "cmd_t": "f/s", "pr_mode_cmd_t": "f/p", "pr_modes": ["smart"]})
    )
    assert _sent(control, inventory, "HassFanSetPreset", preset="smart") == [("f/p", "smart")]


def test_alarm_with_a_code_is_refused_with_the_reason() -> None:
    inventory, control = _home(
        ("alarm_control_panel", {"name": "Alarm", "cmd_t": "a/set", "stat_t": "a", "code": "REMOTE_CODE"})
    )
    with pytest.raises(ToolError, match="code"):
        _sent(control, inventory, "HassTurnOn")
    inventory, control = _home(
        (
            "alarm_control_panel",
            {"name": "Alarm", "cmd_t": "a/set", "stat_t": "a", "cmd_tpl": '{"action": "{{ action }}"}'},
        )
    )
    assert _sent(control, inventory, "HassTurnOn") == [("a/set", '{"action": "ARM_AWAY"}')]


def test_optimistic_state_after_a_command_without_state_topics() -> None:
    inventory, control = _home(("cover", {"name": "Blind", "cmd_t": "c/set", "set_pos_t": "c/pos"}))
    blind = inventory.entities()[0]
    for command in control._commands("HassSetPosition", blind, {"position": 30}):
        control._optimistic(command)  # what _publish does once a command is sent
    state = inventory.state(blind)
    assert state.state == "open" and state.attributes["position"] == 30
    inventory, control = _home(
        ("cover", {"name": "Blind", "cmd_t": "c/set", "stat_t": "c", "set_pos_t": "c/p"})
    )
    blind = inventory.entities()[0]
    for command in control._commands("HassSetPosition", blind, {"position": 30}):
        control._optimistic(command)
    state = inventory.state(blind)  # the state topic reports the state; only the position is assumed
    assert state.state is None and state.attributes["position"] == 30


def test_alarm_code_from_the_settings_is_sent_as_home_assistant_sends_it() -> None:
    from assistant.config import Secret

    def panel(**extra: Any) -> tuple[Inventory, HomeControl]:
        config = {"name": "Alarm", "cmd_t": "a/set", "stat_t": "a", **extra}
        inventory, _ = _home(("alarm_control_panel", config))
        return inventory, HomeControl(inventory, alarm_code=Secret("4321"))

    # REMOTE_CODE: the code goes to the panel through the template's {{ code }}
    inventory, control = panel(code="REMOTE_CODE", cmd_tpl='{"action": "{{ action }}", "code": "{{ code }}"}')
    assert _sent(control, inventory, "HassTurnOff") == [("a/set", '{"action": "DISARM", "code": "4321"}')]
    # a fixed code in the config is checked here, as HA checks it, and only sent if the template asks
    inventory, control = panel(code="4321")
    assert _sent(control, inventory, "HassTurnOn") == [("a/set", "ARM_AWAY")]
    inventory, control = panel(code="1111")
    with pytest.raises(ToolError, match="not the one"):
        _sent(control, inventory, "HassTurnOff")
    # arming without a code where the panel allows it
    inventory, _ = _home(("alarm_control_panel", {"name": "Alarm", "cmd_t": "a/set", "stat_t": "a",
                                                  "code": "REMOTE_CODE", "code_arm_required": False}))
    assert _sent(HomeControl(inventory), inventory, "HassTurnOn") == [("a/set", "ARM_AWAY")]
    with pytest.raises(ToolError, match="code"):
        _sent(HomeControl(inventory), inventory, "HassTurnOff")


def test_the_alarm_code_setting_is_a_secret_that_reaches_the_home_control() -> None:
    from assistant.config import parse_settings
    from assistant.home.service import build_home

    settings = parse_settings("home:\n  alarm_code: {env: CODE}\n", env={"CODE": "4321"})
    assert "4321" not in repr(settings.home)
    home = build_home(settings)
    home.inventory.handle_config("homeassistant/alarm_control_panel/p/config", json.dumps(
        {"name": "Alarm", "cmd_t": "a/set", "stat_t": "a", "code": "REMOTE_CODE",
         "cmd_tpl": "{{ action }} {{ code }}"}).encode())
    assert _sent(home.control, home.inventory, "HassTurnOff") == [("a/set", "DISARM 4321")]
    home.stop(timeout=0.1)
