"""light: HA's mqtt/light (default and json schemas).

Colour modes come from the config as HA derives them: the json schema's
``supported_color_modes`` (else ``brightness`` / ``onoff`` from the ``brightness`` flag; the
legacy ``hs``/``rgb``/``xy`` flags were removed in HA 2025.3), the default schema's command
topics. A colour temperature on a light without a colour-temperature mode is emulated as HA
does (RGBWW white channels, else hue/saturation into the light's colour space), or dropped
(the light is just turned on). ``on_command_type``: ``first`` / ``last`` publish the on
payload before / after the values, ``brightness`` turns on through the brightness topic.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from assistant.errors import ToolError
from assistant.home.domains import color
from assistant.home.domains.base import (
    BrightnessScale,
    Command,
    Domain,
    Reader,
    attr_reader,
    cmd_template,
    command,
    finite_json,
    int_value,
    kelvin_to_mired,
    mired_to_kelvin,
    number,
    on_off,
)
from assistant.home.templates import render_value

if TYPE_CHECKING:
    from assistant.home.discovery import Entity

COLOR_MODES = frozenset({"onoff", "brightness", "color_temp", "hs", "xy", "rgb", "rgbw", "rgbww", "white"})
_COLOR = frozenset({"hs", "xy", "rgb", "rgbw", "rgbww"})
_DEFAULT_MIN_KELVIN, _DEFAULT_MAX_KELVIN = 2000, 6535


def color_modes(entity: Entity) -> frozenset[str]:
    """The light's supported colour modes, as HA derives them from the config."""
    cfg = entity.config
    if cfg.get("schema") == "json":
        modes = cfg.get("supported_color_modes")
        if isinstance(modes, list) and modes:
            return frozenset(str(m) for m in modes)
        return frozenset({"brightness"} if cfg.get("brightness") else {"onoff"})
    found = {
        mode
        for key, mode in (
            ("rgb_command_topic", "rgb"),
            ("rgbw_command_topic", "rgbw"),
            ("rgbww_command_topic", "rgbww"),
            ("hs_command_topic", "hs"),
            ("xy_command_topic", "xy"),
            ("color_temp_command_topic", "color_temp"),
            ("white_command_topic", "white"),
        )
        if key in cfg
    }
    if not found:
        found.add("brightness" if "brightness_command_topic" in cfg else "onoff")
    return frozenset(found)


class Light(Domain):
    name = "light"
    required = ("command_topic",)
    intents = ("HassTurnOn", "HassTurnOff", "HassToggle", "HassLightSet")

    def validate(self, cfg: dict[str, Any]) -> None:
        super().validate(cfg)
        schema = cfg.get("schema", "default")
        if schema == "basic":
            schema = "default"
        if schema not in ("default", "json"):
            raise ValueError(f"light schema {schema!r} is not supported (default or json)")
        cfg["schema"] = schema
        if cfg.get("on_command_type", "last") not in ("first", "last", "brightness"):
            raise ValueError(
                f"on_command_type must be first, last or brightness, got {cfg['on_command_type']!r}"
            )
        if "brightness_scale" in cfg and not 1 <= cfg["brightness_scale"] <= 1_000_000:
            raise ValueError(f"brightness_scale must be 1..1000000, got {cfg['brightness_scale']}")
        modes = cfg.get("supported_color_modes")
        if modes is not None:
            if not isinstance(modes, list) or not all(isinstance(m, str) and m in COLOR_MODES for m in modes):
                raise ValueError(f"supported_color_modes must be a list of {sorted(COLOR_MODES)}")
            if len(modes) > 1 and {"onoff", "brightness"} & set(modes):
                raise ValueError("onoff and brightness can't be combined with other colour modes")

    def capabilities(self, entity: Entity) -> dict[str, Any]:
        modes = color_modes(entity)
        return {
            "dim": bool(modes - {"onoff"}),
            "color_temp": "color_temp" in modes,
            "color": bool(modes & _COLOR),
        }

    def usable(self, intent: str, entity: Entity) -> bool:
        if intent == "HassLightSet":
            return color_modes(entity) != {"onoff"}
        return intent in self.intents

    # ------------------------------------------------------------------ state

    def readers(self, entity: Entity) -> list[tuple[str, Reader]]:
        cfg = entity.config
        out: list[tuple[str, Reader]] = []
        if isinstance(cfg.get("state_topic"), str):
            out.append((cfg["state_topic"], self.read_state))
        if cfg.get("schema") == "json":
            return out
        for topic_key, attribute, template_key, convert in (
            ("brightness_state_topic", "brightness", "brightness_value_template", _brightness),
            ("color_temp_state_topic", "color_temp_kelvin", "color_temp_value_template", _kelvin),
        ):
            if isinstance(cfg.get(topic_key), str):
                out.append((cfg[topic_key], attr_reader(attribute, template_key, convert)))
        return out

    def read_state(self, entity: Entity, text: str) -> dict[str, Any]:
        cfg = entity.config
        if cfg.get("schema") == "json":
            return _read_json(entity, text)
        value = render_value(cfg.get("state_value_template") or cfg.get("value_template"), text)
        return {"state": on_off(entity, value)}

    # ------------------------------------------------------------------ commands

    def commands(
        self, intent: str, entity: Entity, args: Mapping[str, Any], state: Mapping[str, Any] | None = None
    ) -> list[Command]:
        current = state or {}
        if intent == "HassTurnOff":
            return [self._off(entity)]
        if intent == "HassTurnOn":
            return self._on(entity, None, None, current)
        if intent == "HassLightSet":
            brightness, kelvin = args.get("brightness"), args.get("color_temp")
            if brightness is None and kelvin is None:
                raise ToolError("What should I set the light to?", code="missing_value")
            pct = None if brightness is None else int_value(brightness, "brightness", 0, 100)
            k = None if kelvin is None else int_value(kelvin, "color_temp", 1000, 12000)
            if pct == 0:
                return [self._off(entity)]
            return self._on(entity, pct, k, current)
        return super().commands(intent, entity, args)

    @staticmethod
    def _off(entity: Entity) -> Command:
        cfg = entity.config
        payload = (
            json.dumps({"state": "OFF"})
            if cfg.get("schema") == "json"
            else str(cfg.get("payload_off", "OFF"))
        )
        return command(entity, "command_topic", payload, "turned off", state="off")

    def _on(
        self, entity: Entity, pct: int | None, kelvin: int | None, current: Mapping[str, Any]
    ) -> list[Command]:
        cfg = entity.config
        modes = color_modes(entity)
        verb = _verb(pct, kelvin)
        optimistic: dict[str, Any] = {"state": "on"}
        if pct is not None:
            optimistic["brightness"] = pct
        params: dict[str, Any] = {}
        ha_brightness = None if pct is None else BrightnessScale.percent_to_ha(pct)
        if kelvin is not None:
            if "color_temp" in modes:
                params["color_temp"] = kelvin
                optimistic["color_temp_kelvin"] = kelvin
            elif "rgbww" in modes:
                level = ha_brightness or _known_brightness(current) or 255
                low = int(cfg.get("min_kelvin", _DEFAULT_MIN_KELVIN))
                high = int(cfg.get("max_kelvin", _DEFAULT_MAX_KELVIN))
                params["rgbww"] = color.kelvin_to_rgbww(kelvin, level, low, high)
            elif modes & _COLOR:
                hue, sat = color.kelvin_to_hs(kelvin)
                if "hs" in modes:
                    params["hs"] = (hue, sat)
                elif "rgb" in modes:
                    params["rgb"] = color.hs_to_rgb(hue, sat)
                elif "rgbw" in modes:
                    params["rgbw"] = _rgb_to_rgbw(*color.hs_to_rgb(hue, sat))
                elif "xy" in modes:
                    params["xy"] = color.hs_to_xy(hue, sat)
            # else: a light with neither colour temperature nor colour just turns on (as HA)
        if cfg.get("schema") == "json":
            return [
                self._json_on(
                    entity,
                    modes=modes,
                    ha_brightness=ha_brightness,
                    params=params,
                    verb=verb,
                    optimistic=optimistic,
                )
            ]
        return self._default_on(
            entity,
            modes=modes,
            ha_brightness=ha_brightness,
            params=params,
            verb=verb,
            optimistic=optimistic,
            current=current,
        )

    @staticmethod
    def _json_on(
        entity: Entity,
        *,
        modes: frozenset[str],
        ha_brightness: int | None,
        params: Mapping[str, Any],
        verb: str,
        optimistic: dict[str, Any],
    ) -> Command:
        cfg = entity.config
        dim = bool(modes - {"onoff"})
        message: dict[str, Any] = {"state": "ON"}
        scale_to = 255 if dim else (ha_brightness or 255)

        def scaled(channels: tuple[int, ...]) -> list[int]:
            return [round(c / 255 * scale_to) for c in channels]

        if "hs" in params:
            message["color"] = {"h": params["hs"][0], "s": params["hs"][1]}
        if "rgb" in params:
            r, g, b = scaled(params["rgb"])
            message["color"] = {"r": r, "g": g, "b": b}
        if "rgbw" in params:
            r, g, b, w = scaled(params["rgbw"])
            message["color"] = {"r": r, "g": g, "b": b, "w": w}
        if "rgbww" in params:
            r, g, b, c, w = scaled(params["rgbww"])
            message["color"] = {"r": r, "g": g, "b": b, "c": c, "w": w}
        if "xy" in params:
            message["color"] = {"x": params["xy"][0], "y": params["xy"][1]}
        if ha_brightness is not None and dim:
            scale = int(cfg.get("brightness_scale", 255))
            message["brightness"] = max(1, min(scale, round(ha_brightness / 255 * scale)))
        if "color_temp" in params:
            kelvin = params["color_temp"]
            message["color_temp"] = kelvin if cfg.get("color_temp_kelvin") else kelvin_to_mired(kelvin)
        return command(entity, "command_topic", json.dumps(message), verb, **optimistic)

    @staticmethod
    def _default_on(
        entity: Entity,
        *,
        modes: frozenset[str],
        ha_brightness: int | None,
        params: Mapping[str, Any],
        verb: str,
        optimistic: dict[str, Any],
        current: Mapping[str, Any],
    ) -> list[Command]:
        cfg = entity.config
        out: list[Command] = []
        on_type = cfg.get("on_command_type", "last")
        on = command(entity, "command_topic", str(cfg.get("payload_on", "ON")), verb, **optimistic)
        has_brightness_topic = "brightness_command_topic" in cfg
        if on_type == "first":
            out.append(on)
        elif on_type == "brightness" and ha_brightness is None:
            ha_brightness = _known_brightness(current) or 255

        def rgbx(channels: tuple[int, ...]) -> tuple[int, ...]:
            level = 255 if has_brightness_topic else (ha_brightness or _known_brightness(current) or 255)
            return tuple(int(c * level / 255) for c in channels)

        def publish(topic_key: str, template_key: str, value: Any, **variables: Any) -> None:
            out.append(
                command(
                    entity,
                    topic_key,
                    cmd_template(entity, template_key, value, **variables),
                    verb,
                    **optimistic,
                )
            )

        if "hs" in params and "hs_command_topic" in cfg:
            hue, sat = params["hs"]
            publish("hs_command_topic", "hs_command_template", f"{hue},{sat}", hue=hue, sat=sat)
        for mode, keys in (
            ("rgb", ("red", "green", "blue")),
            ("rgbw", ("red", "green", "blue", "white")),
            ("rgbww", ("red", "green", "blue", "cold_white", "warm_white")),
        ):
            if mode in params and f"{mode}_command_topic" in cfg:
                channels = rgbx(params[mode])
                publish(
                    f"{mode}_command_topic",
                    f"{mode}_command_template",
                    ",".join(str(c) for c in channels),
                    **dict(zip(keys, channels, strict=False)),
                )
        if "xy" in params and "xy_command_topic" in cfg:
            x, y = params["xy"]
            publish("xy_command_topic", "xy_command_template", f"{x},{y}", x=x, y=y)
        if ha_brightness is not None and has_brightness_topic:
            device = BrightnessScale(int(cfg.get("brightness_scale", 255)))
            value = max(1, min(device.scale, round(ha_brightness / 255 * device.scale)))
            publish("brightness_command_topic", "brightness_command_template", value)
        elif ha_brightness is not None and "rgb_command_topic" in cfg and "rgb" not in params:
            channels = tuple(int(255 * ha_brightness / 255) for _ in range(3))
            publish(
                "rgb_command_topic",
                "rgb_command_template",
                ",".join(str(c) for c in channels),
                red=channels[0],
                green=channels[1],
                blue=channels[2],
            )
        if "color_temp" in params and "color_temp_command_topic" in cfg:
            kelvin = params["color_temp"]
            value = kelvin if cfg.get("color_temp_kelvin") else kelvin_to_mired(kelvin)
            publish("color_temp_command_topic", "color_temp_command_template", value)
        if on_type == "last" or (on_type == "brightness" and not has_brightness_topic and not out):
            out.append(on)
        if not out:
            raise ToolError(f"The {entity.spoken} can't do that.", code="unsupported")
        return out


def _known_brightness(current: Mapping[str, Any]) -> int | None:
    pct = current.get("brightness")
    return BrightnessScale.percent_to_ha(pct) if isinstance(pct, int) and pct > 0 else None


def _rgb_to_rgbw(r: int, g: int, b: int) -> tuple[int, int, int, int]:
    white = min(r, g, b)
    out = (r - white, g - white, b - white, white)
    top_in, top_out = max(r, g, b), max(out)
    factor = top_in / top_out if top_out else 0.0
    return tuple(round(c * factor) for c in out)  # type: ignore[return-value]


def _verb(pct: int | None, kelvin: int | None) -> str:
    if pct is None and kelvin is None:
        return "turned on"
    parts = []
    if pct is not None:
        parts.append(f"{pct} percent")
    if kelvin is not None:
        parts.append(f"{kelvin} kelvin")
    return "set to " + " and ".join(parts)


def _brightness(entity: Entity, value: str | None) -> int | None:
    raw = number(value)
    if raw is None or raw <= 0:
        return None  # HA ignores a zero brightness (the state topic says off)
    return BrightnessScale(int(entity.config.get("brightness_scale", 255))).to_percent(raw)


def _kelvin(entity: Entity, value: str | None) -> int | None:
    raw = number(value)
    if raw is None or raw <= 0:
        return None
    return int(raw) if entity.config.get("color_temp_kelvin") else mired_to_kelvin(raw)


def _read_json(entity: Entity, text: str) -> dict[str, Any]:
    data = finite_json(entity, text)
    if not isinstance(data, Mapping):
        return {}
    out: dict[str, Any] = {}
    if isinstance(data.get("state"), str):
        out["state"] = on_off(entity, data["state"])
    brightness = data.get("brightness")
    if isinstance(brightness, (int, float)) and not isinstance(brightness, bool):
        pct = _brightness(entity, str(brightness))
        if pct is not None:
            out["brightness"] = pct
    ct = data.get("color_temp")
    if isinstance(ct, (int, float)) and not isinstance(ct, bool) and ct > 0:
        out["color_temp_kelvin"] = _kelvin(entity, str(ct))
    return out


DOMAIN = Light()
