"""Home Assistant MQTT discovery payloads -> validated ``Entity`` objects.

Topics: ``<prefix>/<component>/[<node_id>/]<object_id>/config`` (one entity) and
``<prefix>/device/<id>/config`` (a device with its components under ``cmps``). Keys may
be abbreviated (``cmd_t`` -> ``command_topic``); ``~`` in a ``*_topic`` value expands to
the payload's base topic. Payloads are untrusted: anything malformed raises
ValueError with a message (the caller logs it and skips the entity), and no topic
taken from a payload may contain ``+`` or ``#``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from assistant.home.client import valid_topic
from assistant.home.domains import REGISTRY
from assistant.home.domains.base import coerce_float
from assistant.text import NAME_MAX, clean_text, spoken

SUPPORTED_DOMAINS = frozenset(REGISTRY)
"""Platforms the inventory keeps; others are ignored quietly."""

# Home Assistant's abbreviations of entity options (written from the HA MQTT docs).
ABBREVIATIONS: Mapping[str, str] = MappingProxyType(
    {
        "act_stat_t": "activity_state_topic",
        "act_val_tpl": "activity_value_template",
        "act_t": "action_topic",
        "act_tpl": "action_template",
        "atype": "automation_type",
        "aux_cmd_t": "aux_command_topic",
        "aux_stat_t": "aux_state_topic",
        "aux_stat_tpl": "aux_state_template",
        "av_tones": "available_tones",
        "avty": "availability",
        "avty_mode": "availability_mode",
        "avty_t": "availability_topic",
        "avty_tpl": "availability_template",
        "away_mode_cmd_t": "away_mode_command_topic",
        "away_mode_stat_t": "away_mode_state_topic",
        "away_mode_stat_tpl": "away_mode_state_template",
        "b_tpl": "blue_template",
        "bri_cmd_t": "brightness_command_topic",
        "bri_cmd_tpl": "brightness_command_template",
        "bri_scl": "brightness_scale",
        "bri_stat_t": "brightness_state_topic",
        "bri_tpl": "brightness_template",
        "bri_val_tpl": "brightness_value_template",
        "clr_temp_cmd_tpl": "color_temp_command_template",
        "clr_temp_cmd_t": "color_temp_command_topic",
        "clr_temp_k": "color_temp_kelvin",
        "clr_temp_stat_t": "color_temp_state_topic",
        "clr_temp_tpl": "color_temp_template",
        "clr_temp_val_tpl": "color_temp_value_template",
        "clrm": "color_mode",
        "clrm_stat_t": "color_mode_state_topic",
        "clrm_val_tpl": "color_mode_value_template",
        "cmd_off_tpl": "command_off_template",
        "cmd_on_tpl": "command_on_template",
        "cmd_t": "command_topic",
        "cmd_tpl": "command_template",
        "cmps": "components",
        "cod_arm_req": "code_arm_required",
        "cod_dis_req": "code_disarm_required",
        "cod_trig_req": "code_trigger_required",
        "cod_form": "code_format",
        "curr_hum_t": "current_humidity_topic",
        "curr_hum_tpl": "current_humidity_template",
        "curr_temp_t": "current_temperature_topic",
        "curr_temp_tpl": "current_temperature_template",
        "def_ent_id": "default_entity_id",
        "dev": "device",
        "dev_cla": "device_class",
        "dir_cmd_t": "direction_command_topic",
        "dir_cmd_tpl": "direction_command_template",
        "dir_stat_t": "direction_state_topic",
        "dir_val_tpl": "direction_value_template",
        "dock_cmd_t": "dock_command_topic",
        "dock_cmd_tpl": "dock_command_template",
        "e": "encoding",
        "en": "enabled_by_default",
        "ent_cat": "entity_category",
        "ent_pic": "entity_picture",
        "evt_typ": "event_types",
        "exp_aft": "expire_after",
        "fan_mode_cmd_t": "fan_mode_command_topic",
        "fan_mode_cmd_tpl": "fan_mode_command_template",
        "fan_mode_stat_t": "fan_mode_state_topic",
        "fan_mode_stat_tpl": "fan_mode_state_template",
        "fanspd_lst": "fan_speed_list",
        "flsh_tlng": "flash_time_long",
        "flsh_tsht": "flash_time_short",
        "frc_upd": "force_update",
        "fx_cmd_t": "effect_command_topic",
        "fx_cmd_tpl": "effect_command_template",
        "fx_list": "effect_list",
        "fx_stat_t": "effect_state_topic",
        "fx_tpl": "effect_template",
        "fx_val_tpl": "effect_value_template",
        "g_tpl": "green_template",
        "hs_cmd_t": "hs_command_topic",
        "hs_cmd_tpl": "hs_command_template",
        "hs_stat_t": "hs_state_topic",
        "hs_val_tpl": "hs_value_template",
        "hum_cmd_t": "target_humidity_command_topic",
        "hum_cmd_tpl": "target_humidity_command_template",
        "hum_stat_t": "target_humidity_state_topic",
        "hum_stat_tpl": "target_humidity_state_template",
        "ic": "icon",
        "init": "initial",
        "json_attr": "json_attributes",
        "json_attr_t": "json_attributes_topic",
        "json_attr_tpl": "json_attributes_template",
        "max_hum": "max_humidity",
        "max_k": "max_kelvin",
        "max_mirs": "max_mireds",
        "max_temp": "max_temp",
        "min_hum": "min_humidity",
        "min_k": "min_kelvin",
        "min_mirs": "min_mireds",
        "min_temp": "min_temp",
        "mode_cmd_t": "mode_command_topic",
        "mode_cmd_tpl": "mode_command_template",
        "mode_stat_t": "mode_state_topic",
        "mode_stat_tpl": "mode_state_template",
        "o": "origin",
        "obj_id": "object_id",
        "off_dly": "off_delay",
        "on_cmd_type": "on_command_type",
        "ops": "options",
        "opt": "optimistic",
        "osc_cmd_t": "oscillation_command_topic",
        "osc_cmd_tpl": "oscillation_command_template",
        "osc_stat_t": "oscillation_state_topic",
        "osc_val_tpl": "oscillation_value_template",
        "p": "platform",
        "pct_cmd_t": "percentage_command_topic",
        "pct_cmd_tpl": "percentage_command_template",
        "pct_stat_t": "percentage_state_topic",
        "pct_val_tpl": "percentage_value_template",
        "pause_cmd_t": "pause_command_topic",
        "pause_cmd_tpl": "pause_command_template",
        "pl": "payload",
        "pl_arm_away": "payload_arm_away",
        "pl_arm_custom_b": "payload_arm_custom_bypass",
        "pl_arm_home": "payload_arm_home",
        "pl_arm_nite": "payload_arm_night",
        "pl_arm_vacation": "payload_arm_vacation",
        "pl_avail": "payload_available",
        "pl_cln_sp": "payload_clean_spot",
        "pl_cls": "payload_close",
        "pl_disarm": "payload_disarm",
        "pl_home": "payload_home",
        "pl_inst": "payload_install",
        "pl_loc": "payload_locate",
        "pl_lock": "payload_lock",
        "pl_not_avail": "payload_not_available",
        "pl_not_home": "payload_not_home",
        "pl_off": "payload_off",
        "pl_on": "payload_on",
        "pl_open": "payload_open",
        "pl_osc_off": "payload_oscillation_off",
        "pl_osc_on": "payload_oscillation_on",
        "pl_paus": "payload_pause",
        "pl_prs": "payload_press",
        "pl_ret": "payload_return_to_base",
        "pl_rst": "payload_reset",
        "pl_rst_hum": "payload_reset_humidity",
        "pl_rst_mode": "payload_reset_mode",
        "pl_rst_pct": "payload_reset_percentage",
        "pl_rst_pr_mode": "payload_reset_preset_mode",
        "pl_stop": "payload_stop",
        "pl_stop_tilt": "payload_stop_tilt",
        "pl_strt": "payload_start",
        "pl_stpa": "payload_start_pause",
        "pl_trig": "payload_trigger",
        "pl_turn_off": "payload_turn_off",
        "pl_turn_on": "payload_turn_on",
        "pl_unlk": "payload_unlock",
        "pos": "reports_position",
        "pos_clsd": "position_closed",
        "pos_open": "position_open",
        "pos_t": "position_topic",
        "pos_tpl": "position_template",
        "pow_cmd_t": "power_command_topic",
        "pow_cmd_tpl": "power_command_template",
        "pr_mode_cmd_t": "preset_mode_command_topic",
        "pr_mode_cmd_tpl": "preset_mode_command_template",
        "pr_mode_stat_t": "preset_mode_state_topic",
        "pr_mode_val_tpl": "preset_mode_value_template",
        "pr_modes": "preset_modes",
        "ptrn": "pattern",
        "r_tpl": "red_template",
        "ret": "retain",
        "rgb_cmd_t": "rgb_command_topic",
        "rgb_cmd_tpl": "rgb_command_template",
        "rgb_stat_t": "rgb_state_topic",
        "rgb_val_tpl": "rgb_value_template",
        "rgbw_cmd_t": "rgbw_command_topic",
        "rgbww_cmd_t": "rgbww_command_topic",
        "send_cmd_t": "send_command_topic",
        "send_if_off": "send_if_off",
        "set_fan_spd_t": "set_fan_speed_topic",
        "set_pos_t": "set_position_topic",
        "set_pos_tpl": "set_position_template",
        "spd_rng_max": "speed_range_max",
        "spd_rng_min": "speed_range_min",
        "src_type": "source_type",
        "stat_cla": "state_class",
        "stat_clsd": "state_closed",
        "stat_closing": "state_closing",
        "stat_jam": "state_jammed",
        "stat_locked": "state_locked",
        "stat_locking": "state_locking",
        "stat_off": "state_off",
        "stat_on": "state_on",
        "stat_open": "state_open",
        "stat_opening": "state_opening",
        "stat_stopped": "state_stopped",
        "stat_t": "state_topic",
        "stat_tpl": "state_template",
        "stat_unlocked": "state_unlocked",
        "stat_unlocking": "state_unlocking",
        "stat_val_tpl": "state_value_template",
        "stype": "subtype",
        "sug_dsp_prc": "suggested_display_precision",
        "strt_mow_cmd_t": "start_mowing_command_topic",
        "strt_mow_cmd_tpl": "start_mowing_command_template",
        "sup_clrm": "supported_color_modes",
        "sup_dur": "support_duration",
        "sup_feat": "supported_features",
        "sup_off": "supported_turn_off",
        "sup_vol": "support_volume_set",
        "swing_mode_cmd_t": "swing_mode_command_topic",
        "swing_mode_cmd_tpl": "swing_mode_command_template",
        "swing_mode_stat_t": "swing_mode_state_topic",
        "swing_mode_stat_tpl": "swing_mode_state_template",
        "t": "topic",
        "temp_cmd_t": "temperature_command_topic",
        "temp_cmd_tpl": "temperature_command_template",
        "temp_hi_cmd_t": "temperature_high_command_topic",
        "temp_hi_stat_t": "temperature_high_state_topic",
        "temp_lo_cmd_t": "temperature_low_command_topic",
        "temp_lo_stat_t": "temperature_low_state_topic",
        "temp_stat_t": "temperature_state_topic",
        "temp_stat_tpl": "temperature_state_template",
        "temp_unit": "temperature_unit",
        "tilt_clsd_val": "tilt_closed_value",
        "tilt_cmd_t": "tilt_command_topic",
        "tilt_cmd_tpl": "tilt_command_template",
        "tilt_max": "tilt_max",
        "tilt_min": "tilt_min",
        "tilt_opnd_val": "tilt_opened_value",
        "tilt_opt": "tilt_optimistic",
        "tilt_status_t": "tilt_status_topic",
        "tilt_status_tpl": "tilt_status_template",
        "uniq_id": "unique_id",
        "unit_of_meas": "unit_of_measurement",
        "val_tpl": "value_template",
        "whit_cmd_t": "white_command_topic",
        "whit_scl": "white_scale",
        "xy_cmd_t": "xy_command_topic",
        "xy_cmd_tpl": "xy_command_template",
        "xy_stat_t": "xy_state_topic",
        "xy_val_tpl": "xy_value_template",
    }
)

DEVICE_ABBREVIATIONS: Mapping[str, str] = MappingProxyType(
    {
        "cns": "connections",
        "cu": "configuration_url",
        "hw": "hw_version",
        "ids": "identifiers",
        "mdl": "model",
        "mdl_id": "model_id",
        "mf": "manufacturer",
        "name": "name",
        "sa": "suggested_area",
        "sn": "serial_number",
        "sw": "sw_version",
        "via_device": "via_device",
    }
)

ORIGIN_ABBREVIATIONS: Mapping[str, str] = MappingProxyType(
    {"name": "name", "sw": "sw_version", "url": "support_url"}
)

# Options a device-based config's root shares with every component (HA docs).
_SHARED_OPTIONS = (
    "availability",
    "availability_topic",
    "availability_mode",
    "availability_template",
    "payload_available",
    "payload_not_available",
    "origin",
    "command_topic",
    "state_topic",
    "qos",
    "encoding",
    "~",
)

_ID_PART = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_MAX_ENTITIES_PER_DEVICE = 200


@dataclass(frozen=True)
class Entity:
    """One controllable or readable thing in the home, from discovery or settings."""

    key: str
    """Stable identity inside the inventory: the discovery topic's id, or ``manual/<n>``."""
    domain: str
    name: str
    """Display name (sanitized)."""
    spoken: str
    """Lower-case spoken name ("kitchen light"); the value brains put in ``name``."""
    area: str | None = None
    """Lower-case spoken area ("living room") from the device's suggested_area."""
    unique_id: str | None = None
    device_name: str | None = None
    device_ids: tuple[str, ...] = ()
    device_class: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    """The expanded, validated options (full key names, ``~`` resolved)."""
    source: str = "discovery"
    aliases: tuple[str, ...] = ()
    """Other spoken names people use for it (``spoken_names``): its own name without the device
    prefix, the device's name, and those with the area in front ("living room lamp")."""

    @property
    def names(self) -> tuple[str, ...]:
        """Every spoken name: ``spoken`` first, then the aliases."""
        return (self.spoken, *self.aliases)

    @property
    def entity_id(self) -> str:
        """An HA-style id: ``<domain>.<slug of the unique id or name>``."""
        base = self.unique_id or self.spoken or self.key
        slug = re.sub(r"[^a-z0-9]+", "_", base.lower()).strip("_") or "unnamed"
        return f"{self.domain}.{slug}"


@dataclass(frozen=True)
class DiscoveryTopic:
    """The parts of a discovery config topic."""

    component: str
    node_id: str | None
    object_id: str

    @property
    def key(self) -> str:
        """Inventory key of what this topic configures."""
        parts = [self.component, *([self.node_id] if self.node_id else []), self.object_id]
        return "/".join(parts)


def parse_discovery_topic(prefix: str, topic: str) -> DiscoveryTopic | None:
    """Split ``<prefix>/<component>/[<node_id>/]<object_id>/config``; None when it is not one."""
    if not topic.startswith(prefix + "/") or not topic.endswith("/config"):
        return None
    parts = topic[len(prefix) + 1 :].split("/")
    if len(parts) == 3:
        component, object_id, _ = parts
        node_id = None
    elif len(parts) == 4:
        component, node_id, object_id, _ = parts
    else:
        return None
    for part in (component, node_id, object_id):
        if part is not None and not _ID_PART.match(part):
            return None
    return DiscoveryTopic(component, node_id, object_id)


def _expand_keys(data: Mapping[str, Any], table: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            continue
        full = table.get(key, key)
        if full not in out or key == full:  # a full key wins over its abbreviation
            out[full] = value
    return out


def expand(config: Mapping[str, Any]) -> dict[str, Any]:
    """Full key names everywhere (entity, device, origin, availability) and ``~`` resolved."""
    out = _expand_keys(config, ABBREVIATIONS)
    if isinstance(out.get("device"), Mapping):
        out["device"] = _expand_keys(out["device"], DEVICE_ABBREVIATIONS)
    if isinstance(out.get("origin"), Mapping):
        out["origin"] = _expand_keys(out["origin"], ORIGIN_ABBREVIATIONS)
    base = out.get("~")
    if isinstance(out.get("availability"), list):
        out["availability"] = [
            _expand_keys(a, ABBREVIATIONS) if isinstance(a, Mapping) else a for a in out["availability"]
        ]
    if isinstance(base, str):
        for key, value in list(out.items()):
            if (key.endswith("_topic") or key == "topic") and isinstance(value, str):
                out[key] = _tilde(value, base)
        if isinstance(out.get("availability"), list):
            out["availability"] = [
                {**a, "topic": _tilde(a["topic"], base)}
                if isinstance(a, dict) and isinstance(a.get("topic"), str)
                else a
                for a in out["availability"]
            ]
    return out


def _tilde(value: str, base: str) -> str:
    if value.startswith("~"):
        return base + value[1:]
    if value.endswith("~"):
        return value[:-1] + base
    return value


# --------------------------------------------------------------------------- validation

_SCALAR = (str, int, float, bool)
_INT_KEYS = (
    "qos",
    "brightness_scale",
    "position_open",
    "position_closed",
    "speed_range_min",
    "speed_range_max",
    "min_mireds",
    "max_mireds",
    "min_kelvin",
    "max_kelvin",
)
_NUMBER_KEYS = (
    "min", "max", "step", "min_temp", "max_temp", "temp_step", "precision", "min_humidity", "max_humidity",
)
"""Keys HA reads with vol.Coerce(float): numbers, or numeric text ("7" from Zigbee2MQTT)."""


def _validate(domain: str, cfg: dict[str, Any]) -> None:
    """Raise ValueError for anything the inventory would misuse; coerce harmless scalars."""
    for key, value in cfg.items():
        is_topic = key.endswith("_topic") or key == "topic"
        if is_topic and (not isinstance(value, str) or not valid_topic(value)):
            raise ValueError(f"{key} must be a topic without wildcards, got {str(value)[:80]!r}")
        if is_topic:
            continue
        if key.startswith("payload_") or (key.startswith("state_") and not key.endswith("template")):
            if not isinstance(value, _SCALAR):
                raise ValueError(f"{key} must be a plain value, got {type(value).__name__}")
            cfg[key] = _payload_text(value)
        elif key.endswith("_template") and not isinstance(value, str):
            raise ValueError(f"{key} must be text, got {type(value).__name__}")
    for key in _INT_KEYS:
        if key in cfg:
            value = cfg[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
                raise ValueError(f"{key} must be a whole number, got {value!r}")
            cfg[key] = int(value)
    for key in _NUMBER_KEYS:
        if key in cfg:
            cfg[key] = coerce_float(cfg[key], key)
    if cfg.get("qos", 0) not in (0, 1, 2):
        raise ValueError(f"qos must be 0, 1 or 2, got {cfg['qos']!r}")
    for key in ("options", "modes", "preset_modes", "fan_modes", "swing_modes"):
        if key in cfg:
            value = cfg[key]
            if (
                not isinstance(value, list)
                or not all(isinstance(v, _SCALAR) for v in value)
                or len(value) > 256
            ):
                raise ValueError(f"{key} must be a list of plain values")
            cfg[key] = [_payload_text(v) for v in value]
    if isinstance(cfg.get("availability"), list):
        for item in cfg["availability"]:
            topic = item.get("topic") if isinstance(item, Mapping) else None
            if not isinstance(topic, str) or not valid_topic(topic):
                raise ValueError("availability entries need a topic without wildcards")
    device_class = cfg.get("device_class")
    if device_class is not None and not isinstance(device_class, str):
        raise ValueError("device_class must be text")
    REGISTRY[domain].validate(cfg)  # the domain's own schema (HA's mqtt/<domain>.py)


def _payload_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _name_text(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ValueError(f"{what} must be text, got {type(value).__name__}")
    return clean_text(value, NAME_MAX) or None


def build_entity(
    domain: str, raw: Mapping[str, Any], *, key: str, object_id: str | None = None, source: str = "discovery"
) -> Entity:
    """One validated Entity from an (abbreviated or expanded) config mapping; ValueError when bad."""
    if domain not in SUPPORTED_DOMAINS:
        raise ValueError(f"unsupported component {domain!r}")
    if not isinstance(raw, Mapping):
        raise ValueError(f"config must be a JSON object, got {type(raw).__name__}")
    cfg = expand(raw)
    _validate(domain, cfg)
    device = cfg.get("device")
    if device is not None and not isinstance(device, Mapping):
        raise ValueError("device must be an object")
    device = device or {}
    device_name = _name_text(device.get("name"), "device name")
    ids = device.get("identifiers", ())
    if isinstance(ids, (str, int)):
        ids = [ids]
    if not isinstance(ids, (list, tuple)) or not all(isinstance(i, (str, int)) for i in ids):
        raise ValueError("device identifiers must be text or a list of text")
    area_text = _name_text(cfg.get("area", device.get("suggested_area")), "suggested_area")

    # Home Assistant's rule: name null -> the device's name; no name but a device class ->
    # "<device> <Device class>" (HA's English name of the class); otherwise "<device> <entity>".
    has_name_key = "name" in cfg
    entity_name = _name_text(cfg.get("name"), "name")
    class_name = None
    if not has_name_key and isinstance(cfg.get("device_class"), str):
        class_name = REGISTRY[domain].class_name(cfg["device_class"].lower())
    if entity_name is None and class_name and source == "discovery":
        name = f"{device_name} {class_name}" if device_name else class_name
    elif entity_name is None:
        use_device = device_name and (has_name_key or source == "discovery")
        name = device_name if use_device and device_name else clean_text(
            (object_id or key.rsplit("/", 1)[-1]).replace("_", " ")
        )
    elif device_name and not spoken(entity_name).startswith(spoken(device_name)):
        name = f"{device_name} {entity_name}"
    else:
        name = entity_name
    name = clean_text(name, NAME_MAX)
    said = spoken(name)
    if not said:
        raise ValueError("the entity has no usable name")
    unique_id = cfg.get("unique_id")
    if unique_id is not None and not isinstance(unique_id, (str, int)):
        raise ValueError("unique_id must be text")
    device_class = cfg.get("device_class")
    area_said = spoken(area_text) or None if area_text else None
    own = spoken(entity_name) if entity_name else ""
    if device_name and own.startswith(spoken(device_name) + " "):
        own = own[len(spoken(device_name)) + 1 :]
    return Entity(
        key=key,
        domain=domain,
        name=name,
        spoken=said,
        area=spoken(area_text) or None if area_text else None,
        unique_id=clean_text(unique_id, 128) if unique_id is not None else None,
        device_name=device_name,
        device_ids=tuple(clean_text(i, 128) for i in ids),
        device_class=clean_text(device_class, 32).lower() if device_class else None,
        config=MappingProxyType(cfg),
        source=source,
        aliases=spoken_names(said, own, spoken(device_name) if device_name else "", area_said),
    )


def spoken_names(name: str, own: str, device: str, area: str | None) -> tuple[str, ...]:
    """The other names of an entity called ``name`` (HA's friendly name), as people say them.

    ``own``: the entity's own name without the device prefix ("living room lamp" of device
    "lamp", or "light" of device "kitchen"); ``device``: the device's name; ``area``: its area.
    Each of those, and each with the area in front when it lacks it ("living room lamp"), except
    ``name`` itself. "the lamp in the living room" needs no alias: the templates' name + area
    form and ``Inventory.match`` read it as the name "lamp" scoped to the area.
    """
    out: dict[str, None] = {}
    for base in (name, own, device):
        if not base:
            continue
        out[base] = None
        if area and not re.search(rf"\b{re.escape(area)}\b", base):
            out[f"{area} {base}"] = None
    out.pop(name, None)
    return tuple(a for a in out if a)


def parse_component_payload(topic: DiscoveryTopic, payload: Any) -> Entity:
    """An Entity from a per-component discovery payload (already JSON-decoded)."""
    return build_entity(topic.component, payload, key=topic.key, object_id=topic.object_id)


def parse_device_payload(topic: DiscoveryTopic, payload: Any) -> tuple[list[Entity], list[str]]:
    """Entities from a device-based payload (``cmps``), plus one problem line per bad component.

    ValueError when the payload as a whole is unusable.
    """
    if not isinstance(payload, Mapping):
        raise ValueError(f"device config must be a JSON object, got {type(payload).__name__}")
    root = _expand_keys(payload, ABBREVIATIONS)
    device = root.get("device")
    if not isinstance(device, Mapping):
        raise ValueError("a device config needs a 'dev' object")
    components = root.get("components")
    if not isinstance(components, Mapping):
        raise ValueError("a device config needs a 'cmps' object")
    if len(components) > _MAX_ENTITIES_PER_DEVICE:
        raise ValueError(f"too many components ({len(components)})")
    shared = {k: root[k] for k in _SHARED_OPTIONS if k in root}
    entities: list[Entity] = []
    problems: list[str] = []
    for cmp_id, cmp in components.items():
        if not isinstance(cmp_id, str) or not _ID_PART.match(cmp_id):
            problems.append(f"component id {str(cmp_id)[:40]!r} is not [a-zA-Z0-9_-]")
            continue
        if not isinstance(cmp, Mapping):
            problems.append(f"component {cmp_id}: must be an object")
            continue
        cmp_full = _expand_keys(cmp, ABBREVIATIONS)
        platform = cmp_full.get("platform")
        if not isinstance(platform, str):
            problems.append(f"component {cmp_id}: needs 'p' (the platform)")
            continue
        if platform not in SUPPORTED_DOMAINS:
            continue
        if set(cmp_full) == {"platform"}:
            continue  # HA's way of removing one component from a device
        merged = {**shared, **cmp_full, "device": device}
        merged.pop("platform", None)
        try:
            entities.append(build_entity(platform, merged, key=f"{topic.key}/{cmp_id}", object_id=cmp_id))
        except ValueError as err:
            problems.append(f"component {cmp_id}: {err}")
    return entities, problems
