"""Sentence templates and slot lists for the phrase brain, built from the live tool set.

Two sources feed one hassil ``Intents`` object:

* Home tools named after Home Assistant intents (HassTurnOn, HassLightSet, ...) use
  Home Assistant's own English templates from ``home-assistant-intents``: the lean
  Speech-to-Phrase set, which Home Assistant curates for grammar-based speech
  recognition, plus a few blocks from the full set for what that one lacks (target
  temperature, colour temperature) and a ``toggle`` sentence of our own. Slot lists
  come from the tools' JSON-schema enums (entity names, areas) and numeric ranges.
* Skill tools carry hassil-style templates in ``Tool.sentences`` with ``{param}``
  slots; each slot's list comes from the parameter's schema (enum values, or a small
  integer range).

Home Assistant's templates need each entity's domain ("unlock" only for locks,
"open" only for covers). The tool schemas carry names, not domains, so the domain is
inferred (``entity_domains``): from the tool that lists the name (HassLightSet ->
light, ...), from the tools' own sensitivity rules (HassTurnOff flags a lock,
HassTurnOn a garage door), names only asked about -> sensor, then words in the name
("lamp" -> light); switch by default. A schema that may carry ``x-entity-domains``
(spoken name -> domain) overrides all of that.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from hassil import Intents, RangeFractionType, RangeSlotList, SlotList, TextSlotList, TextSlotValue

from assistant.text import spoken as spoken_form
from assistant.tools.base import Tool

_LOGGER = logging.getLogger(__name__)

MAX_RANGE_VALUES = 201
"""Integer slot ranges longer than this are cut (grammar size grows with every value)."""

# Which HA slot fills which tool argument, where the names differ.
_ARG_RENAMES: dict[str, dict[str, str]] = {
    "HassLightSet": {"temperature": "color_temp"},
}

# Domains implied by a tool that lists a name in its enum.
_TOOL_DOMAINS = {
    "HassLightSet": "light",
    "HassFanSetSpeed": "fan",
    "HassSetPosition": "cover",
    "HassClimateSetTemperature": "climate",
    "HassClimateGetTemperature": "climate",
}

_NAME_KEYWORDS: tuple[tuple[str, str], ...] = (
    (r"\block\b", "lock"),
    (r"\b(light|lights|lamp|lamps|lighting|bulb|chandelier|sconce)\b", "light"),
    (r"\b(fan|fans|ventilator)\b", "fan"),
    (r"\b(thermostat|heating|heater|air conditioning|ac|hvac|radiator)\b", "climate"),
    (r"\b(door|garage|blind|blinds|shade|shades|curtain|curtains|shutter|shutters|gate|awning|window)\b",
     "cover"),
    (r"\b(temperature|humidity|sensor|pressure|power|energy|battery|level|outside|outdoor)\b", "sensor"),
)

# Our own sentence for HassToggle, in Home Assistant's style (HA ships none for it).
_TOGGLE = {
    "data": [
        {
            "sentences": ["toggle [the] {name}"],
            "requires_context": {"domain": ["light", "switch", "fan", "input_boolean"]},
            "metadata": {"slot_combination": "name_only"},
        }
    ]
}

_SWITCHABLE = ["light", "switch", "fan", "media_player", "input_boolean"]


def _name_area(sentences: list[str], domains: list[str]) -> dict[str, Any]:
    return {"sentences": sentences, "requires_context": {"domain": domains},
            "metadata": {"slot_combination": "name_area"}}


# Our own name + area sentences, so that every such form has its opposite: the Speech-to-Phrase set
# has "turn on [the] {name} in [the] {area}" but no "turn off" one, and a grammar that can only hear
# "on" hears "turn off the lamp in the living room" as "turn on ..." (measured on the spoken set).
_MIRRORED = {
    "HassTurnOn": [_name_area(["open [the] {name} in [the] {area}"], ["cover"]),
                   _name_area(["lock [the] {name} in [the] {area}"], ["lock"])],
    "HassTurnOff": [_name_area(["turn off [the] {name} in [the] {area}",
                                "switch off [the] {name} in [the] {area}"], _SWITCHABLE),
                    _name_area(["close [the] {name} in [the] {area}"], ["cover"]),
                    _name_area(["unlock [the] {name} in [the] {area}"], ["lock"])],
}

# Blocks taken from the full English set for what the Speech-to-Phrase set lacks.
_FROM_FULL_SET = {
    "HassClimateSetTemperature": ("area_temperature", "name_temperature", "temperature_only"),
    "HassLightSet": ("area_temperature", "name_temperature"),
}

_LIST_REF = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z_][A-Za-z0-9_]*))?\}")


@dataclass(frozen=True)
class IntentSet:
    """Everything hassil needs to match a transcript, plus how results map to tool calls."""

    intents: Intents
    slot_lists: Mapping[str, SlotList]
    tools: Mapping[str, Tool]
    name_domains: Mapping[str, str] = field(default_factory=dict)

    def arguments(self, intent: str, slots: Mapping[str, Any]) -> dict[str, Any]:
        """Tool arguments from hassil slot values, renamed and filtered to the tool's schema."""
        tool = self.tools.get(intent)
        if tool is None:
            return {}
        props = _properties(tool)
        renames = _ARG_RENAMES.get(intent, {})
        out: dict[str, Any] = {}
        for slot, value in slots.items():
            arg = renames.get(slot, slot)
            schema = props.get(arg)
            if schema is None:
                continue
            out[arg] = _coerce(value, schema)
        return out


@cache
def _ha_sets(language: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(Speech-to-Phrase set, full set) of Home Assistant templates for a language."""
    from home_assistant_intents import get_intents, get_speech_to_phrase_intents  # noqa: PLC0415

    lean = get_speech_to_phrase_intents(language) or {}
    full = get_intents(language) or {}
    return lean, full


def _properties(tool: Tool) -> Mapping[str, Any]:
    props = tool.parameters.get("properties", {}) if isinstance(tool.parameters, Mapping) else {}
    return props if isinstance(props, Mapping) else {}


def _coerce(value: Any, schema: Mapping[str, Any]) -> Any:
    """hassil gives floats for digits and ints for words: follow the schema's type."""
    kind = schema.get("type")
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind == "string" and not isinstance(value, str):
        return str(value)
    return value


def _enum(schema: Any) -> list[Any]:
    if not isinstance(schema, Mapping):
        return []
    values = schema.get("enum")
    if isinstance(values, list):
        return values
    for key in ("anyOf", "oneOf"):  # Optional[...] renders as anyOf [x, null]
        for option in schema.get(key, []) or []:
            found = _enum(option)
            if found:
                return found
    return []


def _schema_type(schema: Mapping[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, str):
        return kind
    if isinstance(kind, list):
        return next((k for k in kind if k != "null"), None)
    for key in ("anyOf", "oneOf"):
        for option in schema.get(key, []) or []:
            if isinstance(option, Mapping) and option.get("type") not in (None, "null"):
                return _schema_type(option)
    return None


def _bounds(schema: Mapping[str, Any]) -> tuple[float | None, float | None]:
    for key in ("anyOf", "oneOf"):
        for option in schema.get(key, []) or []:
            if isinstance(option, Mapping) and option.get("type") in ("integer", "number"):
                return _bounds(option)
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    low_f = float(low) if isinstance(low, (int, float)) and not isinstance(low, bool) else None
    high_f = float(high) if isinstance(high, (int, float)) and not isinstance(high, bool) else None
    return low_f, high_f


def spoken(value: Any) -> str:
    """How an enum value is said: the one spoken form the home side uses too (the join key)."""
    return spoken_form(str(value))


def _guess_domain(name: str) -> str:
    for pattern, domain in _NAME_KEYWORDS:
        if re.search(pattern, name):
            return domain
    return "switch"


def _probe(tool: Tool, name: str) -> bool:
    """Whether the tool's own sensitivity rule flags ``name`` (a lock to unlock, a door to open)."""
    try:
        return tool.is_sensitive({"name": name})
    except Exception:  # a rule that needs more arguments says nothing about the domain
        return False


def entity_domains(tools: Iterable[Tool]) -> dict[str, str]:
    """Spoken entity name -> HA domain, from what the home tools reveal (see module docstring).

    In order: an explicit ``x-entity-domains`` hint; the tool that lists the name
    (HassLightSet -> light, ...); the tools' own sensitivity rules (HassTurnOff flags
    a lock, HassTurnOn a garage door or gate); names only asked about -> sensor;
    then words in the name; switch by default.
    """
    tool_list = list(tools)
    by_name = {t.name: t for t in tool_list}
    declared: dict[str, str] = {}
    implied: dict[str, str] = {}
    listed_by: dict[str, set[str]] = {}
    for tool in tool_list:
        schema = _properties(tool).get("name")
        if not isinstance(schema, Mapping):
            continue
        hints = schema.get("x-entity-domains")
        if isinstance(hints, Mapping):
            for name, domain in hints.items():
                if isinstance(name, str) and isinstance(domain, str):
                    declared.setdefault(spoken(name), domain)
        for value in _enum(schema):
            name = spoken(value)
            listed_by.setdefault(name, set()).add(tool.name)
            if tool.name in _TOOL_DOMAINS:
                implied.setdefault(name, _TOOL_DOMAINS[tool.name])
    switching = {"HassTurnOn", "HassTurnOff", "HassToggle"}
    result: dict[str, str] = {}
    for name, listed in listed_by.items():
        domain = declared.get(name) or implied.get(name)
        if domain is None and "HassTurnOff" in by_name and _probe(by_name["HassTurnOff"], name):
            domain = "lock"
        if domain is None and "HassTurnOn" in by_name and _probe(by_name["HassTurnOn"], name):
            domain = "cover"
        if domain is None and not listed & switching:
            domain = "sensor"
        if domain == "climate" and not listed & {"HassClimateSetTemperature", *switching}:
            domain = "sensor"  # a temperature someone only asks about
        result[name] = domain or _guess_domain(name)
    return result


def _range_list(name: str, schema: Mapping[str, Any], default: tuple[int, int], *,
                step: int = 1, halves: bool = False) -> RangeSlotList:
    low, high = _bounds(schema)
    start = int(low) if low is not None else default[0]
    stop = int(high) if high is not None else default[1]
    if stop < start:
        start, stop = default
    if (stop - start) // step + 1 > MAX_RANGE_VALUES:
        _LOGGER.info("Range of %s cut to %d values for the grammar", name, MAX_RANGE_VALUES)
        stop = start + step * (MAX_RANGE_VALUES - 1)
    return RangeSlotList(
        name=name, start=start, stop=stop, step=step,
        fraction_type=RangeFractionType.HALVES if halves else None,
    )


def _home_lists(tools: Mapping[str, Tool], domains: Mapping[str, str]) -> dict[str, SlotList]:
    lists: dict[str, SlotList] = {}
    areas: dict[str, None] = {}
    for tool in tools.values():
        for value in _enum(_properties(tool).get("area")):
            areas[spoken(value)] = None
    name_values = [
        TextSlotValue.from_tuple((name, name, {"domain": domain}), allow_template=False)
        for name, domain in sorted(domains.items())
    ]
    lists["name"] = TextSlotList(name="name", values=name_values)
    lists["area"] = TextSlotList.from_tuples(
        [(a, a) for a in sorted(areas)], allow_template=False, name="area"
    )
    lists["floor"] = TextSlotList(name="floor", values=[])

    def prop(tool: str, arg: str) -> Mapping[str, Any]:
        found = _properties(tools[tool]).get(arg) if tool in tools else None
        return found if isinstance(found, Mapping) else {}

    lists["brightness"] = _range_list("brightness", prop("HassLightSet", "brightness"), (0, 100))
    lists["position"] = _range_list("position", prop("HassSetPosition", "position"), (0, 100))
    lists["fan_speed"] = _range_list("fan_speed", prop("HassFanSetSpeed", "percentage"), (0, 100))
    lists["temperature"] = _range_list(
        "temperature", prop("HassClimateSetTemperature", "temperature"), (10, 30), halves=True
    )
    lists["color_temperature"] = _range_list(
        "color_temperature", prop("HassLightSet", "color_temp"), (2000, 6500), step=100
    )
    return lists


_ONE_PER_HOME = frozenset({"HassClimateGetTemperature", "HassClimateSetTemperature"})
"""Tools whose target-less forms stay in the grammar without a satellite area: a home usually has
one thermostat, and the home tools act on the one that fits ("set the temperature to 21")."""


def satellite_area(tools: Iterable[Tool]) -> str | None:
    """The area the home tools say this assistant stands in (``x-satellite-area``), if any."""
    for tool in tools:
        schema = _properties(tool).get("area")
        if isinstance(schema, Mapping) and isinstance(schema.get("x-satellite-area"), str):
            return str(schema["x-satellite-area"])
    return None


def _area_free(block: Mapping[str, Any], tool: Tool, *, satellite: bool) -> Mapping[str, Any] | None:
    """A block that needs the satellite's area ("turn on the lights", "what is the temperature"),
    without that requirement: the call then names no area and the home tools act in the
    assistant's own area, or on the one entity that fits. Without such an area only the
    thermostat's forms are kept: "lights on" would sweep the whole home, and "set fan to {n}"
    let real single words act ("porcupine" -> "set fan to thirty five", measured)."""
    requires = dict(block.get("requires_context") or {})
    if "area" not in requires:
        return block
    if tool.name not in _ONE_PER_HOME and not satellite:
        return None
    requires.pop("area")
    out = dict(block)
    out["requires_context"] = requires
    return out


def _usable_block(block: Mapping[str, Any], tool: Tool) -> bool:
    """Drop blocks that set an argument the tool lacks."""
    props = _properties(tool)
    slots = block.get("slots") or {}
    domain = slots.get("domain")
    if domain is not None:
        allowed = _enum(props.get("domain"))
        if "domain" not in props or (allowed and domain not in allowed):
            return False
    if tool.name == "HassLightSet":
        combo = (block.get("metadata") or {}).get("slot_combination", "")
        if combo.endswith("temperature") and "color_temp" not in props:
            return False
        if combo.endswith("brightness") and "brightness" not in props:
            return False
    return True


def _skill_intent(tool: Tool, lists: dict[str, SlotList]) -> dict[str, Any] | None:
    """An intent entry for a tool's own templates; list names made unique per tool."""
    props = _properties(tool)
    sentences: list[str] = []
    for template in tool.sentences:
        missing: list[str] = []

        def rename(match: re.Match[str], missing: list[str] = missing) -> str:
            list_name, slot = match.group(1), match.group(2) or match.group(1)
            key = f"{tool.name}__{list_name}"
            if key not in lists:
                built = _param_list(key, props.get(list_name))
                if built is None:
                    missing.append(list_name)
                    return match.group(0)
                lists[key] = built
            return "{" + key + ":" + slot + "}"

        text = _LIST_REF.sub(rename, template)
        if missing:
            _LOGGER.info("Tool %s: sentence %r left out (no spoken values for %s)",
                         tool.name, template, ", ".join(missing))
            continue
        sentences.append(text)
    if not sentences:
        return None
    return {"data": [{"sentences": sentences}]}


def _param_list(name: str, schema: Any) -> SlotList | None:
    if not isinstance(schema, Mapping):
        return None
    values = [v for v in _enum(schema) if v is not None]
    if values:
        return TextSlotList(
            name=name,
            values=[TextSlotValue.from_tuple((spoken(v), v), allow_template=False) for v in values],
        )
    kind = _schema_type(schema)
    if kind in ("integer", "number"):
        return _range_list(name, schema, (0, 100))
    return None  # free text has no place in a grammar


def build_intent_set(tools: Sequence[Tool], language: str = "en") -> IntentSet:
    """hassil intents and slot lists for the given tools."""
    lean, full = _ha_sets(language)
    by_name = {tool.name: tool for tool in tools}
    intents: dict[str, Any] = {}
    for name, tool in by_name.items():
        source: dict[str, Any] | None = copy.deepcopy(lean.get("intents", {}).get(name))
        if name == "HassToggle":
            source = copy.deepcopy(_TOGGLE)
        extra = _FROM_FULL_SET.get(name, ())
        if extra:
            blocks = full.get("intents", {}).get(name, {}).get("data", [])
            chosen = [copy.deepcopy(b) for b in blocks
                      if (b.get("metadata") or {}).get("slot_combination") in extra]
            source = source or {"data": []}
            source["data"].extend(chosen)
        if name in _MIRRORED and source is not None:
            source["data"].extend(copy.deepcopy(_MIRRORED[name]))
        if source is None:
            continue
        satellite = satellite_area(tools) is not None
        free = (_area_free(block, tool, satellite=satellite) for block in source["data"])
        data = [block for block in free if block is not None and _usable_block(block, tool)]
        if data:
            intents[name] = {"data": data}
    domains = entity_domains(t for t in tools if t.name in intents)
    lists = _home_lists(by_name, domains)
    for tool in tools:
        if not tool.sentences:
            continue
        entry = _skill_intent(tool, lists)
        if entry is None:
            continue
        if tool.name in intents:
            intents[tool.name]["data"].extend(entry["data"])
        else:
            intents[tool.name] = entry
    rules = dict(full.get("expansion_rules", {}))
    rules.update(lean.get("expansion_rules", {}))
    ha_lists = dict(full.get("lists", {}))
    ha_lists.update(lean.get("lists", {}))
    document = {
        "language": language,
        "intents": intents,
        "lists": {k: v for k, v in ha_lists.items() if k not in lists},
        "expansion_rules": rules,
        "skip_words": list(lean.get("skip_words", [])),
    }
    parsed = Intents.from_dict(document)
    all_lists: dict[str, SlotList] = dict(parsed.slot_lists)
    all_lists.update(lists)
    return IntentSet(intents=parsed, slot_lists=all_lists, tools=by_name, name_domains=domains)
