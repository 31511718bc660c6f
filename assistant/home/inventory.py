"""The home inventory: entities from HA MQTT discovery and settings, their tracked state, and
matching of spoken names and areas.

Discovery configs and state messages arrive in the MQTT thread; readers (tools, brains)
call from other threads, so every shared structure is behind one lock. Listeners hear
about inventory changes (entities added, removed or renamed), debounced so that the burst
of retained configs at start-up triggers one rebuild, not two hundred.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from assistant.home.client import Message, MqttClient, Subscription
from assistant.home.discovery import (
    SUPPORTED_DOMAINS,
    Entity,
    build_entity,
    parse_component_payload,
    parse_device_payload,
    parse_discovery_topic,
)
from assistant.home.domains import REGISTRY
from assistant.home.domains.base import Reader
from assistant.text import spoken

_LOGGER = logging.getLogger(__name__)

ChangeListener = Callable[[], None]

DEFAULT_BIRTH_TOPIC = "homeassistant/status"
"""Where Home Assistant announces itself (``online``) unless configured otherwise."""

MAX_ENTITIES = 20_000
"""Most entities discovery may add (a large install has a few thousand)."""
MAX_REFUSALS_KEPT = 1000
"""Refused discovery topics remembered with their reason (for ``assistant home``)."""
MAX_CONFIG_BYTES = 32 * 1024 * 1024
"""Most bytes of discovery configs kept at once (a typical config is 0.5 to 2 KB)."""


class _Debouncer:
    """Calls ``action()`` once, ``delay_s`` after the last of a burst of ``trigger()`` calls.

    One long-lived thread per burst instead of a new ``threading.Timer`` per trigger: the
    10 000 retained configs of a big install trigger 10 000 times in a second.
    """

    def __init__(self, delay_s: float, action: Callable[[], None], name: str) -> None:
        self.delay_s = delay_s
        self._action = action
        self._name = name
        self._cond = threading.Condition()
        self._due: float | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    def trigger(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._due = time.monotonic() + self.delay_s
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._due is not None and not self._closed:
                    wait = self._due - time.monotonic()
                    if wait <= 0:
                        break
                    self._cond.wait(wait)
                if self._closed or self._due is None:
                    self._thread = None
                    return
                self._due = None
            try:
                self._action()
            except Exception:
                _LOGGER.exception("%s failed", self._name)
            with self._cond:
                if self._due is None:
                    self._thread = None
                    return

    @property
    def pending(self) -> bool:
        """True while a call is scheduled."""
        with self._cond:
            return self._due is not None

    def close(self) -> None:
        """Drop a scheduled call; later triggers do nothing."""
        with self._cond:
            self._closed = True
            self._due = None
            self._cond.notify_all()


@dataclass(frozen=True)
class EntityState:
    """What is known about an entity now: ``state`` is None while unknown."""

    state: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    updated: float | None = None
    """``time.monotonic()`` of the last update."""


# Words people use for a domain, singular (plurals are reduced before lookup).
DOMAIN_WORDS: Mapping[str, str] = MappingProxyType(
    {
        "light": "light",
        "lamp": "light",
        "bulb": "light",
        "lighting": "light",
        "switch": "switch",
        "plug": "switch",
        "socket": "switch",
        "outlet": "switch",
        "fan": "fan",
        "ventilator": "fan",
        "cover": "cover",
        "blind": "cover",
        "shade": "cover",
        "shutter": "cover",
        "curtain": "cover",
        "awning": "cover",
        "garage door": "cover",
        "gate": "cover",
        "window": "cover",
        "lock": "lock",
        "door lock": "lock",
        "thermostat": "climate",
        "heating": "climate",
        "heater": "climate",
        "climate": "climate",
        "air conditioner": "climate",
        "air conditioning": "climate",
        "scene": "scene",
        "button": "button",
        "sensor": "sensor",
        "alarm": "alarm_control_panel",
        "alarm control panel": "alarm_control_panel",
        "binary sensor": "binary_sensor",
        "number": "number",
        "select": "select",
    }
)

_ARTICLES = ("the ", "a ", "an ", "my ", "our ", "all the ", "all ", "every ", "both ")


def singular(word: str) -> str:
    """English singular of the last word of a phrase ("kitchen lights" -> "kitchen light")."""
    head, _, last = word.rpartition(" ")
    if len(last) > 3 and last.endswith("ies"):
        last = last[:-3] + "y"
    elif len(last) > 3 and last.endswith(("ches", "shes", "sses", "xes", "zes")):
        last = last[:-2]
    elif len(last) > 2 and last.endswith("s") and not last.endswith(("ss", "us", "is")):
        last = last[:-1]
    return f"{head} {last}" if head else last


def normalize(phrase: str | None) -> str:
    """Spoken form without leading articles: "The Kitchen-Light" -> "kitchen light"."""
    if not phrase:
        return ""
    text = spoken(phrase)
    changed = True
    while changed:
        changed = False
        for article in _ARTICLES:
            if text.startswith(article):
                text = text[len(article) :]
                changed = True
    text = text.replace("'s ", " ")
    return text.strip()


@dataclass(frozen=True)
class Match:
    """The entities a name/area/domain triple refers to, and how it was understood."""

    entities: tuple[Entity, ...]
    area: str | None = None
    domain: str | None = None
    by_name: bool = False
    """True when a name picked the entities (as opposed to an area/domain sweep)."""


class Inventory:
    """Entities (discovered + hand-declared), their states, and name matching."""

    def __init__(
        self,
        client: MqttClient | None,
        *,
        discovery_prefix: str = "homeassistant",
        manual_entities: Sequence[Mapping[str, Any]] = (),
        ignore_device_ids: Iterable[str] = (),
        debounce_s: float = 0.3,
        birth_debounce_s: float = 1.0,
        max_entities: int = MAX_ENTITIES,
        max_config_bytes: int = MAX_CONFIG_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``birth_debounce_s``: a burst of HA birth messages within this time costs one re-read.

        ``max_entities`` / ``max_config_bytes`` cap what discovery may add (hand-declared
        entities always count but are never refused).
        """
        self.client = client
        self.prefix = discovery_prefix
        self._ignore_devices = frozenset(ignore_device_ids)
        self._debounce_s = debounce_s
        self._clock = clock
        self.max_entities = max_entities
        self.max_config_bytes = max_config_bytes
        self._configs: dict[str, tuple[int, int]] = {}
        """Per discovery key: (payload bytes, payload hash) of the config in use."""
        self._config_bytes = 0
        self._full_warned = False
        self.refused_full = 0
        """Discovery configs refused because the inventory was at its cap."""
        self._notifier = _Debouncer(debounce_s, self._notify, "inventory-notify")
        self._resync = _Debouncer(birth_debounce_s, self._resync_now, "inventory-resync")
        self.resyncs = 0
        """Full re-reads of the retained discovery configs so far (one per burst of births)."""
        self._lock = threading.RLock()
        self._entities: dict[str, Entity] = {}
        self._states: dict[str, EntityState] = {}
        self._state_subs: dict[str, list[Subscription]] = {}
        self._device_members: dict[str, set[str]] = {}
        self._listeners: list[ChangeListener] = []
        self._version = 0
        self._started = False
        self.rejected = 0
        """Discovery payloads refused so far (bad JSON, wrong types, wildcards, ...)."""
        self.refusals: dict[str, str] = {}
        """Discovery topic (``/<component id>`` appended for a device's component) -> why it was
        refused, for ``assistant home``; a later good config of that topic clears it."""
        self.configs_seen = 0
        """Discovery messages handled so far (``assistant home`` waits until they stop)."""
        self.states_seen = 0
        """State messages handled so far."""
        for index, raw in enumerate(manual_entities):
            self.add_manual(raw, index)

    # ------------------------------------------------------------------ wiring

    @property
    def discovery_filters(self) -> tuple[str, str]:
        """Topic filters of per-component and device-based configs."""
        return (f"{self.prefix}/+/+/config", f"{self.prefix}/+/+/+/config")

    @property
    def birth_topics(self) -> tuple[str, ...]:
        """Home Assistant's status topics (birth ``online`` / will ``offline``).

        HA's default ``homeassistant/status`` does not follow a changed discovery prefix,
        so both ``<prefix>/status`` and the default are watched.
        """
        return tuple(dict.fromkeys((f"{self.prefix}/status", DEFAULT_BIRTH_TOPIC)))

    def start(self) -> None:
        """Subscribe to discovery, HA's birth message and the state topics of known entities."""
        if self.client is None or self._started:
            return
        self._started = True
        for topic_filter in self.discovery_filters:
            self.client.subscribe(topic_filter, self._on_config)
        for topic in self.birth_topics:
            self.client.subscribe(topic, self._on_birth)
        with self._lock:
            for entity in self._entities.values():
                self._follow(entity)

    def add_listener(self, listener: ChangeListener) -> None:
        """Call ``listener()`` (debounced) whenever entities are added, removed or changed."""
        self._listeners.append(listener)

    @property
    def version(self) -> int:
        """Increases with every inventory change."""
        return self._version

    # ------------------------------------------------------------------ reading

    def entities(self) -> list[Entity]:
        """All entities, sorted by spoken name."""
        with self._lock:
            return sorted(self._entities.values(), key=lambda e: (e.spoken, e.key))

    def get(self, key: str) -> Entity | None:
        """The entity with this inventory key."""
        with self._lock:
            return self._entities.get(key)

    def state(self, entity: Entity | str) -> EntityState:
        """The tracked state (unknown when nothing arrived yet)."""
        key = entity if isinstance(entity, str) else entity.key
        with self._lock:
            return self._states.get(key, EntityState())

    def names(self) -> list[str]:
        """Spoken entity names, sorted, unique."""
        with self._lock:
            return sorted({e.spoken for e in self._entities.values()})

    def areas(self) -> list[str]:
        """Spoken area names, sorted, unique."""
        with self._lock:
            return sorted({e.area for e in self._entities.values() if e.area})

    def domains(self) -> list[str]:
        """Domains present, sorted."""
        with self._lock:
            return sorted({e.domain for e in self._entities.values()})

    # ------------------------------------------------------------------ matching

    def match(
        self,
        name: str | None = None,
        area: str | None = None,
        domain: str | None = None,
        *,
        domains: Iterable[str] | None = None,
    ) -> Match:
        """Entities meant by a spoken name / area / domain ("the lights in the kitchen").

        ``domains`` limits the candidates to what the asking tool can act on.
        """
        allowed = frozenset(domains) if domains is not None else None
        with self._lock:
            pool = [e for e in self._entities.values() if allowed is None or e.domain in allowed]
            known_areas = {e.area for e in self._entities.values() if e.area}
        area_n = self._area_of(normalize(area), known_areas) if area else None
        if area and area_n is None:
            return Match((), normalize(area), None)
        domain_n = self._domain_of(normalize(domain)) if domain else None
        if domain and domain_n is None:
            return Match((), area_n, normalize(domain))
        name_n = normalize(name)

        if name_n:
            # "the lights in the kitchen", "kitchen lights", "the kitchen": split area and domain words
            for sep in (" in the ", " in ", " on the ", " at the "):
                if sep in name_n:
                    head, tail = name_n.split(sep, 1)
                    tail_area = self._area_of(normalize(tail), known_areas)
                    if tail_area and (area_n is None or area_n == tail_area):
                        area_n, name_n = tail_area, normalize(head)
                        break
            hits = self._by_name(pool, name_n, area_n, domain_n, exact=True)
            if hits:
                return Match(tuple(hits), area_n, domain_n, by_name=True)
            plural = singular(name_n) != name_n
            sweep = self._domain_of(name_n) is not None or self._split_area_domain(name_n, known_areas)
            if not (plural and sweep):
                # "kitchen lights" means the lights in the kitchen, not the one called "kitchen light"
                hits = self._by_name(pool, name_n, area_n, domain_n, exact=False)
                if hits:
                    return Match(tuple(hits), area_n, domain_n, by_name=True)
            if not name_n:
                pass
            elif (word_domain := self._domain_of(name_n)) is not None:
                domain_n = domain_n or word_domain
            elif (word_area := self._area_of(name_n, known_areas)) is not None:
                area_n = area_n or word_area
            else:
                split = self._split_area_domain(name_n, known_areas)
                if split is None:
                    return Match((), area_n, domain_n)
                area_n = area_n or split[0]
                domain_n = domain_n or split[1]
        if area_n is None and domain_n is None:
            return Match((), None, None)
        hits = [
            e
            for e in pool
            if (area_n is None or e.area == area_n) and (domain_n is None or e.domain == domain_n)
        ]
        return Match(tuple(sorted(hits, key=lambda e: e.spoken)), area_n, domain_n)

    @staticmethod
    def _by_name(
        pool: list[Entity], name: str, area: str | None, domain: str | None, *, exact: bool
    ) -> list[Entity]:
        if not name:
            return []
        scoped = [
            e for e in pool if (area is None or e.area == area) and (domain is None or e.domain == domain)
        ]
        if exact:
            return sorted((e for e in scoped if name in e.names), key=lambda e: e.spoken)
        wanted = {name, singular(name)}
        hits = [e for e in scoped if any(n in wanted or singular(n) in wanted for n in e.names)]
        if hits or area is None:
            return sorted(hits, key=lambda e: e.spoken)
        # "the light" in the kitchen -> "kitchen light": the name without its area words
        loose = []
        for e in scoped:
            for said in e.names:
                rest = " ".join(re.sub(rf"\b{re.escape(area)}\b", " ", said).split())
                if rest in wanted or singular(rest) in wanted:
                    loose.append(e)
                    break
        return sorted(loose, key=lambda e: e.spoken)

    @staticmethod
    def _domain_of(word: str) -> str | None:
        if not word:
            return None
        for candidate in (word, singular(word)):
            if candidate in DOMAIN_WORDS:
                return DOMAIN_WORDS[candidate]
        return None

    @staticmethod
    def _area_of(word: str, known: set[str]) -> str | None:
        if not word:
            return None
        for candidate in (word, singular(word)):
            if candidate in known:
                return candidate
        return None

    def _split_area_domain(self, phrase: str, known: set[str]) -> tuple[str | None, str | None] | None:
        """ "kitchen lights" -> ("kitchen", "light"); "lights kitchen" is not English, so no."""
        words = phrase.split()
        for cut in range(1, len(words)):
            head, tail = " ".join(words[:cut]), " ".join(words[cut:])
            area = self._area_of(head, known)
            dom = self._domain_of(tail)
            if area and dom:
                return area, dom
        return None

    # ------------------------------------------------------------------ discovery intake

    def _on_config(self, message: Message) -> None:
        self.handle_config(message.topic, message.payload)

    def handle_config(self, topic: str, payload: bytes) -> None:
        """Apply one discovery message (empty payload = removal). Never raises."""
        parsed = parse_discovery_topic(self.prefix, topic)
        if parsed is None:
            return
        self.configs_seen += 1
        self._refuse(topic, None)
        try:
            if not payload.strip():
                self._remove_config(parsed.key, parsed.component == "device")
                return
            if self._unchanged(parsed.key, parsed.component == "device", payload):
                return  # the same retained config again (a re-read after HA's birth, a reconnect)
            try:
                data = json.loads(payload.decode("utf-8"))
            except UnicodeDecodeError:
                raise ValueError("payload is not UTF-8") from None
            except (json.JSONDecodeError, RecursionError) as err:
                raise ValueError(f"payload is not JSON: {err}") from None
            if parsed.component == "device":
                entities, problems = parse_device_payload(parsed, data)
                for problem in problems:
                    _LOGGER.warning("discovery %s: %s; component skipped", topic, problem)
                    self.rejected += 1
                    self._refuse(topic, problem)
                entities = [e for e in entities if not self._ignored(e)]
                with self._lock:
                    old = self._device_members.get(parsed.key, set())
                    if not self._room_for(topic, parsed.key, len(entities) - len(old), len(payload)):
                        return
                # Listeners run from here: never with the lock held. Configs arrive in one thread.
                self._set_device(parsed.key, entities)
                self._remember(parsed.key, payload)
            else:
                if parsed.component not in SUPPORTED_DOMAINS:
                    self._refuse(topic, f"the assistant has no module for the {parsed.component} domain")
                    return
                entity = parse_component_payload(parsed, data)
                if self._ignored(entity):
                    return
                with self._lock:
                    added = 0 if entity.key in self._entities else 1
                    if not self._room_for(topic, parsed.key, added, len(payload)):
                        return
                self._put(entity)
                self._remember(parsed.key, payload)
        except ValueError as err:
            self.rejected += 1
            self._refuse(topic, str(err))
            _LOGGER.warning("discovery %s refused: %s", topic, err)
        except Exception as err:
            self.rejected += 1
            self._refuse(topic, f"internal error: {type(err).__name__}")
            _LOGGER.exception("discovery %s failed", topic)

    def _refuse(self, topic: str, reason: str | None) -> None:
        with self._lock:
            if reason is None:
                self.refusals.pop(topic, None)
                return
            if len(self.refusals) < MAX_REFUSALS_KEPT or topic in self.refusals:
                previous = self.refusals.get(topic)
                self.refusals[topic] = f"{previous}; {reason}" if previous else reason

    def _unchanged(self, key: str, is_device: bool, payload: bytes) -> bool:
        with self._lock:
            known = self._configs.get(key)
            if known is None or known != (len(payload), hash(payload)):
                return False
            if is_device:
                return all(k in self._entities for k in self._device_members.get(key, ()))
            return key in self._entities

    def _remember(self, key: str, payload: bytes) -> None:
        with self._lock:
            old = self._configs.get(key)
            self._config_bytes += len(payload) - (old[0] if old else 0)
            self._configs[key] = (len(payload), hash(payload))

    def _forget(self, key: str) -> None:
        old = self._configs.pop(key, None)
        if old is not None:
            self._config_bytes -= old[0]
            self._full_warned = False  # room again: the next refusal is news

    def _room_for(self, topic: str, key: str, added_entities: int, size: int) -> bool:
        """False (and one clear warning per fill-up) when a config would pass a cap."""
        old = self._configs.get(key)
        total_bytes = self._config_bytes + size - (old[0] if old else 0)
        count = len(self._entities) + added_entities
        if count <= self.max_entities and total_bytes <= self.max_config_bytes:
            self._full_warned = False
            return True
        self.refused_full += 1
        why = (
            f"{count} entities would pass the cap of {self.max_entities}"
            if count > self.max_entities
            else f"{total_bytes} bytes of configs would pass the cap of {self.max_config_bytes}"
        )
        self._refuse(topic, f"the home inventory is full ({why})")
        if not self._full_warned:
            self._full_warned = True
            _LOGGER.warning(
                "discovery %s refused: the home inventory is full (%s); "
                "further refusals are logged at debug level",
                topic,
                why,
            )
        else:
            _LOGGER.debug("discovery %s refused: %s", topic, why)
        return False

    def _ignored(self, entity: Entity) -> bool:
        return bool(self._ignore_devices.intersection(entity.device_ids))

    def add_manual(self, raw: Mapping[str, Any], index: int = 0) -> Entity | None:
        """Add one entity declared in settings (discovery keys plus ``component``); None if invalid."""
        try:
            if not isinstance(raw, Mapping):
                raise ValueError("must be a mapping")
            component = raw.get("component") or raw.get("platform") or raw.get("p")
            if not isinstance(component, str):
                raise ValueError("needs 'component' (light, switch, ...)")
            body = {k: v for k, v in raw.items() if k not in ("component", "platform", "p")}
            entity = build_entity(component, body, key=f"manual/{index}", source="manual")
        except ValueError as err:
            _LOGGER.error("home.entities[%d] skipped: %s", index, err)
            return None
        self._put(entity)
        return entity

    def _put(self, entity: Entity) -> None:
        # an entity's own name that is a bare kind ("light" of device "Kitchen") or an alias that is
        # the area itself ("kitchen", a device named after its room) would shadow the domain and area
        # sweeps ("turn on the light" here, "the kitchen"); a device called "Lamp" keeps "lamp"
        device = spoken(entity.device_name or "")
        aliases = tuple(a for a in entity.aliases
                        if (a == device or self._domain_of(a) is None) and a != entity.area)
        if aliases != entity.aliases:
            entity = replace(entity, aliases=aliases)
        with self._lock:
            old = self._entities.get(entity.key)
            if old == entity:
                return
            if old is not None:
                self._unfollow(old.key)
            self._entities[entity.key] = entity
            if old is None or old.config.get("state_topic") != entity.config.get("state_topic"):
                self._states.pop(entity.key, None)
            self._follow(entity)
            changed = old is None or (old.spoken, old.area, old.domain, old.aliases) != (
                entity.spoken,
                entity.area,
                entity.domain,
                entity.aliases,
            )
        _LOGGER.debug(
            "%s %s: %s (%s)%s",
            "updated" if old else "discovered",
            entity.domain,
            entity.spoken,
            entity.key,
            f" in {entity.area}" if entity.area else "",
        )
        if changed:
            self._changed()

    def _set_device(self, device_key: str, entities: list[Entity]) -> None:
        with self._lock:
            keep = {e.key for e in entities}
            for key in self._device_members.get(device_key, set()) - keep:
                self._remove_entity(key)
            self._device_members[device_key] = keep
        for entity in entities:
            self._put(entity)
        self._changed()

    def _remove_config(self, key: str, is_device: bool) -> None:
        with self._lock:
            self._forget(key)
            keys = self._device_members.pop(key, set()) if is_device else {key}
            removed = [k for k in keys if self._remove_entity(k)]
        if removed:
            _LOGGER.info("removed by empty discovery payload: %s", ", ".join(sorted(removed)))
            self._changed()

    def _remove_entity(self, key: str) -> bool:
        with self._lock:
            entity = self._entities.pop(key, None)
            if entity is None:
                return False
            self._unfollow(key)
            self._states.pop(key, None)
            return True

    def _on_birth(self, message: Message) -> None:
        if message.payload.strip() != b"online" or self.client is None:
            return
        if self._resync.delay_s <= 0:
            self._resync_now()
            return
        if not self._resync.pending:
            _LOGGER.info(
                "Home Assistant came online; re-reading retained discovery configs in %.1f s",
                self._resync.delay_s,
            )
        self._resync.trigger()  # a burst of births (HA restarting twice, several HA) -> one re-read

    def _resync_now(self) -> None:
        if self.client is None:
            return
        self.resyncs += 1
        for topic_filter in self.discovery_filters:
            self.client.resubscribe(topic_filter)

    # ------------------------------------------------------------------ change notification

    def _changed(self) -> None:
        self._version += 1
        if self._debounce_s <= 0:
            self._notify()
            return
        self._notifier.trigger()

    def _notify(self) -> None:
        with self._lock:
            count, areas = len(self._entities), len({e.area for e in self._entities.values() if e.area})
        _LOGGER.info("home inventory: %d entities in %d areas", count, areas)
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:
                _LOGGER.exception("inventory change listener failed")

    def close(self) -> None:
        """Cancel a pending change notification and re-read (nothing is unsubscribed: the
        connection is about to go, and the broker drops a client's subscriptions with it)."""
        self._notifier.close()
        self._resync.close()

    # ------------------------------------------------------------------ state tracking

    def _follow(self, entity: Entity) -> None:
        if self.client is None or not self._started:
            return
        subs = []
        for topic, reader in _state_readers(entity):

            def handler(message: Message, key: str = entity.key, read: _Reader = reader) -> None:
                self._on_state(key, read, message)

            subs.append(self.client.subscribe(topic, handler))
        self._state_subs[entity.key] = subs

    def _unfollow(self, key: str) -> None:
        if self.client is None:
            return
        for sub in self._state_subs.pop(key, []):
            self.client.unsubscribe(sub)

    def _on_state(self, key: str, read: _Reader, message: Message) -> None:
        self.states_seen += 1
        try:
            text = message.text()
        except ValueError as err:
            _LOGGER.warning("state for %s ignored: %s", key, err)
            return
        with self._lock:
            entity = self._entities.get(key)
            if entity is None:
                return
            current = self._states.get(key, EntityState())
            try:
                update = read(entity, text)
            except Exception:  # readers parse untrusted text; a bug there must not stop the others
                _LOGGER.exception("state reader for %s failed", key)
                return
            state = current.state
            attributes = dict(current.attributes)
            for name, value in update.items():
                if name == "state":
                    state = value
                else:
                    attributes[name] = value
            self._states[key] = EntityState(state, MappingProxyType(attributes), self._clock())

    def set_state(self, key: str, state: str | None, **attributes: Any) -> None:
        """Record a state by hand (optimistic updates, tests)."""
        with self._lock:
            current = self._states.get(key, EntityState())
            self._states[key] = EntityState(
                state, MappingProxyType({**current.attributes, **attributes}), self._clock()
            )


# ---------------------------------------------------------------------------- state readers

_Reader = Reader


def _state_readers(entity: Entity) -> list[tuple[str, Reader]]:
    """(topic, reader) pairs that keep an entity's state current: the domain module's."""
    return REGISTRY[entity.domain].readers(entity)
