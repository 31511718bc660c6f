"""Text side of the phrase brain: templates from tools, grammar expansion, matching to tool calls."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from assistant.brains.phrase.graph import GraphBuilder, WordGraph
from assistant.brains.phrase.pronounce import Pronouncer
from assistant.brains.phrase.templates import build_intent_set, entity_domains
from assistant.brains.phrase.testkit import RecordingRouter, demo_tools
from assistant.tools.base import Tool


def _sentences(graph: WordGraph, limit: int = 100_000) -> set[str]:
    """Every word sequence from start to final (small graphs only)."""
    out: set[str] = set()
    by_src: dict[int, list[tuple[int, str | None]]] = {}
    for src, dst, word in graph.arcs:
        by_src.setdefault(src, []).append((dst, word))
    stack: list[tuple[int, tuple[str, ...]]] = [(graph.start, ())]
    while stack and len(out) < limit:
        state, words = stack.pop()
        if state == graph.final:
            out.add(" ".join(words))
        for dst, word in by_src.get(state, ()):
            stack.append((dst, (*words, word) if word else words))
    return out


def _accepts(graph: WordGraph, text: str) -> bool:
    by_src: dict[int, list[tuple[int, str | None]]] = {}
    for src, dst, word in graph.arcs:
        by_src.setdefault(src, []).append((dst, word))
    states = {graph.start}
    for word in text.split():
        states = {dst for s in states for dst, w in by_src.get(s, ()) if w == word}
    return graph.final in states


def _graph_of(templates: list[str], lists: dict[str, Any] | None = None) -> WordGraph:
    from hassil import Intents

    intents = Intents.from_dict({"language": "en", "intents": {"X": {"data": [{"sentences": templates}]}},
                                 "lists": lists or {}})
    builder = GraphBuilder(intents, intents.slot_lists)
    builder.add_intents()
    return builder.build()


def test_templates_expand_optionals_alternatives_and_word_suffixes() -> None:
    graph = _graph_of(["(set|start) [a] timer for {n} minute[s]"], {"n": {"range": {"from": 1, "to": 2}}})
    assert _sentences(graph) == {
        f"{verb}{a} timer for {n} {unit}"
        for verb in ("set", "start") for a in ("", " a") for n in ("one", "two")
        for unit in ("minute", "minutes")
    }


def test_epsilon_removal_keeps_the_same_sentences() -> None:
    graph = _graph_of(["[please] turn [on] [the] [big] light[s] [now]", "(a|[b] c) [d]"])
    before = _sentences(graph)
    graph.remove_epsilons()
    assert all(word is not None for _, _, word in graph.arcs)
    assert _sentences(graph) == before


def test_numbers_are_spelled_the_way_hassil_spells_them() -> None:
    graph = _graph_of(["to {t} degrees"], {"t": {"range": {"from": 21, "to": 22, "fractions": "halves"}}})
    assert _sentences(graph) == {
        "to twenty one degrees", "to twenty one point five degrees",
        "to twenty two degrees", "to twenty two point five degrees",
    }


def test_words_without_pronunciation_cut_their_branch_only() -> None:
    graph = _graph_of(["turn on the (lamp|zzqx)"])
    pronouncer = Pronouncer({"turn": "T ER N", "on": "AA N", "the": "DH AH", "lamp": "L AE M P"})
    graph.prune(lambda w: pronouncer.phones(w, spell=False) is not None)
    assert _sentences(graph) == {"turn on the lamp"}


def test_unknown_names_are_spelled_from_dictionary_pieces() -> None:
    pronouncer = Pronouncer({"room": "R UW M", "ba": "B AA", "sonos": "S OW N OW S"})
    assert pronouncer.phones("roomba") == "R UW M B AA"
    assert pronouncer.phones("roomba", spell=False) is None
    assert pronouncer.phones("x9") is None


def test_entity_domains_come_from_tools_sensitivity_rules_and_words() -> None:
    def tool(name: str, names: list[str], sensitive: Any = False) -> Tool:
        prop: dict[str, Any] = {"type": "string", "enum": names}
        return Tool(name, "", {"type": "object", "properties": {"name": prop}}, lambda **_: None,
                    sensitive=sensitive)

    switchable = ["front door", "desk lamp", "garage door", "espresso", "boiler"]
    domains = entity_domains([
        tool("HassTurnOn", switchable, lambda a: a["name"] == "garage door"),
        tool("HassTurnOff", switchable, lambda a: a["name"] == "front door"),
        tool("HassFanSetSpeed", ["espresso"]),
        tool("HassGetState", [*switchable, "attic humidity"]),
        tool("HassClimateGetTemperature", ["patio"]),
    ])
    assert domains == {"front door": "lock", "desk lamp": "light", "garage door": "cover", "espresso": "fan",
                       "boiler": "switch", "attic humidity": "sensor", "patio": "sensor"}


def test_an_explicit_domain_hint_wins() -> None:
    prop = {"type": "string", "enum": ["front door"], "x-entity-domains": {"front door": "cover"}}
    tool = Tool("HassTurnOff", "", {"type": "object", "properties": {"name": prop}}, lambda **_: None,
                sensitive=True)
    assert entity_domains([tool]) == {"front door": "cover"}


def test_skill_templates_take_slot_values_from_the_schema() -> None:
    tools = [
        Tool("start_timer", "", {"type": "object", "properties": {
            "minutes": {"type": "integer", "minimum": 1, "maximum": 5},
            "label": {"type": "string"}}}, lambda **_: None,
            sentences=("set a timer for {minutes} minute[s]", "timer called {label}")),
        Tool("set_mode", "", {"type": "object", "properties": {
            "mode": {"type": "string", "enum": ["away", "night_time"]}}}, lambda **_: None,
            sentences=("switch to {mode} mode",)),
    ]
    intents = build_intent_set(tools)
    builder = GraphBuilder(intents.intents, intents.slot_lists)
    builder.add_intents()
    sentences = _sentences(builder.build())
    assert "set a timer for three minutes" in sentences
    assert "switch to night time mode" in sentences
    assert not any("called" in s for s in sentences)  # free text cannot be in a grammar


@pytest.fixture(scope="module")
def demo_grammar(phrase_brain):  # type: ignore[no-untyped-def]
    router = RecordingRouter(demo_tools())
    return phrase_brain, phrase_brain.build(router)


def test_every_test_set_sentence_is_in_the_grammar_and_maps_to_its_tool_call(  # type: ignore[no-untyped-def]
    demo_grammar, testset_script
) -> None:
    brain, grammar = demo_grammar
    intents = grammar.intents
    builder = GraphBuilder(intents.intents, intents.slot_lists)
    builder.add_intents()
    graph = builder.build()
    graph.remove_epsilons()
    for text, name, arguments in (*testset_script.COMMANDS, *testset_script.NAMES, *testset_script.SENSITIVE):
        words = text.lower()
        assert _accepts(graph, words), text
        match = brain.match(words, grammar)
        assert match is not None, text
        assert match.call.to_json() == {"name": name, "arguments": arguments}, text


def test_out_of_domain_text_matches_nothing(demo_grammar, testset_script) -> None:  # type: ignore[no-untyped-def]
    brain, grammar = demo_grammar
    for text in testset_script.OUT_OF_DOMAIN:
        assert brain.match(text.lower(), grammar) is None, text


def test_vague_area_less_commands_are_not_in_the_grammar(demo_grammar) -> None:  # type: ignore[no-untyped-def]
    brain, grammar = demo_grammar
    # "lights on" needs a satellite area; without one it would sweep every room
    assert brain.match("lights on", grammar) is None
    assert brain.match("turn off the lights", grammar) is None


def test_area_less_commands_come_with_the_satellites_area(phrase_brain) -> None:  # type: ignore[no-untyped-def]
    tools = []
    for original in demo_tools():
        props = original.parameters.get("properties", {})
        if "area" in props:
            props = {**props, "area": {**props["area"], "x-satellite-area": "kitchen"}}
        tools.append(replace(original, parameters={**original.parameters, "properties": props}))
    grammar = phrase_brain.build(RecordingRouter(tools))
    # the call names no area: the home tools act in the assistant's own one
    for text, call in (("turn off the lights", ("HassTurnOff", {"domain": "light"})),
                       ("lights on", ("HassTurnOn", {"domain": "light"})),
                       ("set the temperature to twenty degrees", ("HassClimateSetTemperature",
                                                                  {"temperature": 20.0}))):
        match = phrase_brain.match(text, grammar)
        assert match is not None and (match.call.name, match.call.arguments) == call, text


def test_arguments_follow_the_schema_types(demo_grammar) -> None:  # type: ignore[no-untyped-def]
    brain, grammar = demo_grammar
    match = brain.match("set the kitchen light brightness to 50 percent", grammar)
    assert match is not None
    assert match.call.arguments == {"name": "kitchen light", "brightness": 50}
    assert isinstance(match.call.arguments["brightness"], int)
    match = brain.match("set the thermostat to twenty point five degrees", grammar)
    assert match is not None
    assert match.call.arguments == {"name": "thermostat", "temperature": 20.5}


def test_plural_names_the_whole_group_even_when_a_device_shares_the_name(demo_grammar) -> None:  # type: ignore[no-untyped-def]
    brain, grammar = demo_grammar
    # "the bedroom lights" means every light in the bedroom (a ceiling light called
    # "bedroom light" and a bedside lamp alike), not just the device called "bedroom light"
    match = brain.match("turn off the bedroom lights", grammar)
    assert match is not None and match.call.arguments == {"area": "bedroom", "domain": "light"}
    match = brain.match("turn off the bedroom light", grammar)
    assert match is not None and match.call.arguments == {"name": "bedroom light"}
    match = brain.match("turn on the lights in the kitchen", grammar)
    assert match is not None and match.call.arguments == {"area": "kitchen", "domain": "light"}


def _random_sentences(graph: WordGraph, n: int, seed: int) -> list[str]:
    import random

    rng = random.Random(seed)  # noqa: S311 - a reproducible walk, not a secret
    by_src: dict[int, list[tuple[int, str | None]]] = {}
    for src, dst, word in graph.arcs:
        by_src.setdefault(src, []).append((dst, word))
    out = []
    for _ in range(n):
        state, words = graph.start, []
        while state != graph.final:
            dst, word = rng.choice(by_src[state])
            if word:
                words.append(word)
            state = dst
        out.append(" ".join(words))
    return out


def test_merging_equivalent_states_keeps_every_sentence_and_shrinks_the_grammar() -> None:
    lists = {"name": {"values": ["kitchen light", "kitchen lamp", "hall light", "porch"]},
             "area": {"values": ["kitchen", "hall"]}}
    graph = _graph_of(["turn on [the] {name}", "turn off [the] {name}", "switch {name} (on|off)",
                       "is [the] {name} [in [the] {area}] on", "toggle {name}"], lists)
    graph.remove_epsilons()
    before, arcs = _sentences(graph), len(graph.arcs)
    graph.merge_equivalent()
    assert _sentences(graph) == before
    assert len(graph.arcs) < arcs
    assert (graph.start, graph.final) == (0, 1)


def test_the_merged_home_grammar_accepts_exactly_what_the_full_one_does(demo_grammar, testset_script) -> None:  # type: ignore[no-untyped-def]
    _brain, grammar = demo_grammar
    intents = grammar.intents
    builder = GraphBuilder(intents.intents, intents.slot_lists)
    builder.add_intents()
    full = builder.build()
    full.remove_epsilons()
    merged = WordGraph(full.start, full.final, full.n_states, list(full.arcs))
    merged.merge_equivalent()
    assert len(merged.arcs) < len(full.arcs)
    for text in _random_sentences(merged, 1500, seed=1):
        assert _accepts(full, text), text
    for text in _random_sentences(full, 1500, seed=2):
        assert _accepts(merged, text), text
    for text, _name, _arguments in (*testset_script.COMMANDS, *testset_script.SENSITIVE):
        assert _accepts(merged, text.lower()), text


def test_the_home_tools_tell_the_brain_each_names_domain() -> None:
    """A light called "porch" and a switch called "desk lamp": the domain comes from discovery,
    not from the words (HA's templates say "turn on the porch" only for what can be turned on,
    and a lamp-sounding switch must not be read as a light)."""
    from assistant.home.control import HomeControl
    from assistant.home.inventory import Inventory

    inventory = Inventory(None, manual_entities=[
        {"component": "light", "name": "Porch", "command_topic": "t/porch/set"},
        {"component": "switch", "name": "Desk Lamp", "command_topic": "t/desk/set"},
        {"component": "lock", "name": "Shed", "command_topic": "t/shed/set"},
    ])
    domains = entity_domains(HomeControl(inventory).tools())
    assert domains == {"porch": "light", "desk lamp": "switch", "shed": "lock"}
