"""A robust MQTT client over paho-mqtt 2.x for the assistant.

One supervisor thread owns the paho client: it connects, runs paho's network loop
and, when the connection drops or is refused, waits an exponential backoff (1 s to
60 s by default) before the next attempt. After every successful connect it
publishes ``<base>/<site>/availability = online`` (retained; the last will says
``offline``), subscribes again to every topic filter that has handlers, flushes the
publishes that waited while offline and calls the on-connect hooks (which re-publish
discovery).

Publishes made while disconnected wait in a bounded queue. Home-control commands
carry their creation time: one older than ``freshness_s`` when the connection comes
back is dropped and reported, never fired late; sensitive commands are never queued
(``HomeError`` with code ``mqtt_offline``).

Everything that arrives is untrusted: oversized payloads are ignored, and no
exception ever escapes a paho callback.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from assistant.backoff import Backoff
from assistant.config import MqttSettings
from assistant.errors import HomeError

_LOGGER = logging.getLogger(__name__)

_AUTH_FAILURES = {134, 135}  # bad user name or password / not authorized
_UNSUPPORTED_PROTOCOL = 132
_SUBSCRIBE_BATCH = 500
"""Topic filters per SUBSCRIBE packet when (re)subscribing everything after a connect."""


@dataclass(frozen=True, slots=True)
class Message:
    """One incoming MQTT message (payload size already checked)."""

    topic: str
    payload: bytes
    retain: bool = False
    qos: int = 0

    def text(self) -> str:
        """The payload as UTF-8 text; raises ValueError when it is not valid UTF-8."""
        try:
            return self.payload.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(f"payload on {self.topic!r} is not UTF-8 text: {err.reason}") from None

    def json(self) -> Any:
        """The payload parsed as JSON; raises ValueError on bad UTF-8 or bad JSON."""
        text = self.text()
        try:
            return json.loads(text)
        except (json.JSONDecodeError, RecursionError) as err:
            raise ValueError(f"payload on {self.topic!r} is not JSON: {err}") from None


MessageHandler = Callable[[Message], None]
"""Called in the MQTT thread for each matching message; exceptions are logged, never raised."""


class PublishStatus(StrEnum):
    """What happened to one publish."""

    SENT = "sent"
    """Handed to the broker connection."""
    QUEUED = "queued"
    """Waiting in the offline queue for the connection to come back."""
    DROPPED_STALE = "dropped_stale"
    """A command that was older than the freshness window when the connection came back."""
    DROPPED_FULL = "dropped_full"
    """Pushed out of the full offline queue by a newer publish."""
    DROPPED_STOPPED = "dropped_stopped"
    """Still queued when the client stopped."""


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    """The fate of one publish; ``age_s`` is its age when that fate was decided."""

    topic: str
    status: PublishStatus
    command: bool = False
    age_s: float = 0.0


OutcomeListener = Callable[[PublishOutcome], None]


@dataclass
class _Pending:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    created: float
    command: bool
    on_outcome: OutcomeListener | None = None


@dataclass
class Subscription:
    """A handle returned by ``MqttClient.subscribe``; pass it to ``unsubscribe``."""

    topic_filter: str
    handler: MessageHandler
    qos: int = 0
    id: int = field(default=0)


def _payload_bytes(payload: str | bytes | bytearray) -> bytes:
    if isinstance(payload, str):
        return payload.encode("utf-8")
    return bytes(payload)


def valid_topic(topic: str, *, allow_wildcards: bool = False) -> bool:
    """True for a usable topic name: non-empty, not too long, no NUL, no + or # unless allowed."""
    if not isinstance(topic, str) or not topic or len(topic.encode("utf-8", "replace")) > 65535:
        return False
    if "\x00" in topic:
        return False
    return allow_wildcards or ("+" not in topic and "#" not in topic)


def _offline_error() -> HomeError:
    return HomeError("The home connection is down; a sensitive command is never queued.", code="mqtt_offline")


class MqttClient:
    """The assistant's one connection to the broker (see the module docstring)."""

    def __init__(
        self,
        settings: MqttSettings,
        *,
        site: str = "default",
        backoff_min_s: float = 1.0,
        backoff_max_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        connack_timeout_s: float = 10.0,
    ) -> None:
        """``clock`` measures command age; ``sleep`` (tests) replaces the interruptible backoff wait;
        a broker that accepts TCP but sends no CONNACK within ``connack_timeout_s`` is given up on."""
        self.connack_timeout_s = connack_timeout_s
        self.settings = settings
        self.site = site
        self.client_id = settings.client_id or f"assistant-{site}"
        self.availability_topic = f"{settings.base_topic}/{site}/availability"
        self._clock = clock
        self._sleep = sleep
        self._backoff = Backoff(backoff_min_s, backoff_max_s)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._stopping = False
        self._connected_event = threading.Event()
        self._connected = False
        self._thread: threading.Thread | None = None
        self._paho: paho.Client | None = None
        self._protocol = (
            MQTTProtocolVersion.MQTTv311 if settings.protocol == "3.1.1" else MQTTProtocolVersion.MQTTv5
        )
        self._queue: deque[_Pending] = deque()
        self._by_filter: dict[str, dict[int, Subscription]] = {}
        """Handlers per topic filter: subscribe/unsubscribe cost O(1) however many entities there are."""
        self._wildcards: dict[str, dict[int, Subscription]] = {}
        """The filters with + or # (a few): only these are matched one by one per message."""
        self._ids = itertools.count(1)
        self._on_connect_hooks: list[Callable[[], None]] = []
        self._outcome_listeners: list[OutcomeListener] = []
        self._got_connack = False
        self.dropped: deque[PublishOutcome] = deque(maxlen=100)
        """Recent publishes that were dropped (stale, queue full, stopped)."""
        self.backoff_history: deque[float] = deque(maxlen=64)
        """Recent backoff delays, in the order they were waited."""
        self.last_error: str | None = None
        """Code of the last connection problem: unreachable, auth_failed, tls_failed, refused, protocol,
        no_connack (TCP accepted, CONNECT never answered)."""
        self.connect_count = 0
        """Successful connects so far."""
        self.attempt_count = 0
        """Connection attempts so far."""

    # ------------------------------------------------------------------ properties

    @property
    def connected(self) -> bool:
        """True while a CONNACK-confirmed connection is up."""
        return self._connected

    @property
    def enabled(self) -> bool:
        """False when no broker is configured (mqtt.host is None)."""
        return self.settings.host is not None

    @property
    def protocol(self) -> str:
        """The MQTT protocol in use or being tried: "5" or "3.1.1"."""
        return "5" if self._protocol == MQTTProtocolVersion.MQTTv5 else "3.1.1"

    def wait_connected(self, timeout: float) -> bool:
        """Block until connected or ``timeout`` seconds pass; True when connected."""
        return self._connected_event.wait(timeout)

    def queued(self) -> int:
        """Publishes waiting for the connection."""
        with self._lock:
            return len(self._queue)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the supervisor thread (returns at once; connects in the background).

        Raises HomeError(code="tls_config") when TLS files cannot be loaded.
        """
        if not self.enabled or self._thread is not None:
            return
        self._paho = self._make_paho()  # surfaces TLS file problems now, not in the thread
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"mqtt-{self.site}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Publish availability offline, disconnect cleanly and stop the thread."""
        thread = self._thread
        if thread is None:
            return
        deadline = time.monotonic() + timeout
        self._stopping = True
        client = self._paho
        if client is not None and self._connected:
            try:
                # Written to the socket at once (no paho thread owns this client) and ahead of the
                # DISCONNECT, so the broker has it either way. The PUBACK can sit behind thousands
                # of retained messages still coming in: wait for it only briefly.
                info = client.publish(self.availability_topic, b"offline", qos=1, retain=True)
                info.wait_for_publish(timeout=min(0.25, timeout / 4))
            except (RuntimeError, ValueError, OSError) as err:
                _LOGGER.debug("could not publish offline on stop: %s", err)
            client.disconnect()
        self._stop.set()
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            _LOGGER.warning("the MQTT thread did not end within %.1f s of stop()", timeout)
        self._thread = None
        self._stopping = False
        self._connected = False
        self._connected_event.clear()
        with self._lock:
            pending, self._queue = list(self._queue), deque()
        for item in pending:
            self._report(item, PublishStatus.DROPPED_STOPPED)

    # ------------------------------------------------------------------ hooks

    def add_on_connect(self, hook: Callable[[], None]) -> None:
        """Call ``hook()`` after every successful (re)connect, in the MQTT thread."""
        self._on_connect_hooks.append(hook)
        if self._connected:
            self._safe_call(hook)

    def add_outcome_listener(self, listener: OutcomeListener) -> None:
        """Call ``listener(outcome)`` whenever a queued publish is sent or dropped."""
        self._outcome_listeners.append(listener)

    # ------------------------------------------------------------------ subscribing

    def subscribe(self, topic_filter: str, handler: MessageHandler, qos: int = 0) -> Subscription:
        """Register ``handler`` for messages matching ``topic_filter`` (kept across reconnects)."""
        if not valid_topic(topic_filter, allow_wildcards=True):
            raise HomeError(f"invalid topic filter {topic_filter!r}", code="bad_topic")
        sub = Subscription(topic_filter, handler, qos, next(self._ids))
        with self._lock:
            new_filter = topic_filter not in self._by_filter
            handlers = self._by_filter.setdefault(topic_filter, {})
            handlers[sub.id] = sub
            if "+" in topic_filter or "#" in topic_filter:
                self._wildcards[topic_filter] = handlers
            client = self._paho
            if client is not None and self._connected and new_filter:
                client.subscribe(topic_filter, qos)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Remove one handler; the broker subscription goes when no handler needs it."""
        with self._lock:
            handlers = self._by_filter.get(sub.topic_filter)
            if handlers is None or handlers.pop(sub.id, None) is None:
                return
            still_used = bool(handlers)
            if not still_used:
                del self._by_filter[sub.topic_filter]
                self._wildcards.pop(sub.topic_filter, None)
            client = self._paho
            if client is not None and self._connected and not still_used:
                client.unsubscribe(sub.topic_filter)

    def resubscribe(self, topic_filter: str) -> None:
        """Unsubscribe and subscribe again at the broker, so retained messages arrive again."""
        with self._lock:
            subs = self._by_filter.get(topic_filter, {})
            qos = max((s.qos for s in subs.values()), default=None)
            client = self._paho
            if qos is None or client is None or not self._connected:
                return
            client.unsubscribe(topic_filter)
            client.subscribe(topic_filter, qos)

    # ------------------------------------------------------------------ publishing

    def publish(
        self, topic: str, payload: str | bytes | bytearray, *, qos: int = 0, retain: bool = False
    ) -> PublishOutcome:
        """Publish state-like data; while offline it waits in the queue (retained ones coalesce by topic)."""
        return self._publish(topic, _payload_bytes(payload), qos, retain, command=False, on_outcome=None)

    def publish_command(
        self,
        topic: str,
        payload: str | bytes | bytearray,
        *,
        qos: int = 0,
        retain: bool = False,
        sensitive: bool = False,
        on_outcome: OutcomeListener | None = None,
    ) -> PublishOutcome:
        """Publish a home-control command.

        Offline: a sensitive command raises HomeError(code="mqtt_offline"); another waits
        in the queue and is dropped (reported through ``on_outcome`` and the listeners) if
        it is older than ``freshness_s`` when the connection comes back.

        Commands always go out at QoS 0, whatever ``qos`` says: paho replays unacknowledged
        QoS 1/2 messages after a reconnect with no regard to their age, and a command must
        never fire late. Our own queue gives the at-least-once part, with a freshness check.
        """
        data = _payload_bytes(payload)
        del qos
        if sensitive and not self._connected:
            raise _offline_error()
        return self._publish(topic, data, 0, retain, command=True, on_outcome=on_outcome, sensitive=sensitive)

    def publish_simple(self, topic: str, payload: str | bytes, retain: bool = False) -> None:
        """``assistant.tools.context.Publish``-shaped publish for skills (QoS 1; queued while offline).

        Raises HomeError (bad topic, no broker configured).
        """
        self.publish(topic, payload, qos=1, retain=retain)

    def _publish(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        *,
        command: bool,
        on_outcome: OutcomeListener | None,
        sensitive: bool = False,
    ) -> PublishOutcome:
        if not valid_topic(topic):
            raise HomeError(f"refusing to publish to invalid topic {topic!r}", code="bad_topic")
        if not self.enabled:
            raise HomeError("no MQTT broker is configured (mqtt.host)", code="mqtt_disabled")
        qos = qos if qos in (0, 1, 2) else 0
        item = _Pending(topic, payload, qos, retain, self._clock(), command, on_outcome)
        with self._lock:
            client = self._paho
            if self._connected and client is not None:
                info = client.publish(topic, payload, qos=qos, retain=retain)
                if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                    return PublishOutcome(topic, PublishStatus.SENT, command)
                _LOGGER.debug("publish to %s failed (%s); queueing", topic, info.rc)
            if sensitive:
                raise _offline_error()
            self._enqueue(item)
        _LOGGER.info(
            "MQTT offline: %s to %s queued (%d waiting)",
            "command" if command else "publish",
            topic,
            len(self._queue),
        )
        return PublishOutcome(topic, PublishStatus.QUEUED, command)

    def _enqueue(self, item: _Pending) -> None:
        if item.retain and not item.command:
            # A newer retained state supersedes an older one on the same topic.
            self._queue = deque(p for p in self._queue if not (p.retain and p.topic == item.topic))
        while len(self._queue) >= max(1, self.settings.queue_size):
            old = self._queue.popleft()
            _LOGGER.warning(
                "offline queue full (%d): dropping the oldest publish to %s",
                self.settings.queue_size,
                old.topic,
            )
            self._report(old, PublishStatus.DROPPED_FULL)
        self._queue.append(item)

    def _flush(self, client: paho.Client) -> None:
        """Send what waited while offline; called with the lock held, right after connect."""
        now = self._clock()
        pending, self._queue = list(self._queue), deque()
        for item in pending:
            age = now - item.created
            if item.command and age > self.settings.freshness_s:
                _LOGGER.warning(
                    "dropped a stale command to %s: %.1f s old (freshness window %.1f s)",
                    item.topic,
                    age,
                    self.settings.freshness_s,
                )
                self._report(item, PublishStatus.DROPPED_STALE, age)
                continue
            info = client.publish(item.topic, item.payload, qos=item.qos, retain=item.retain)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._queue.append(item)  # the connection went again; keep it for the next one
                continue
            self._report(item, PublishStatus.SENT, age)

    def _report(self, item: _Pending, status: PublishStatus, age: float = 0.0) -> None:
        outcome = PublishOutcome(item.topic, status, item.command, age)
        if status is not PublishStatus.SENT:
            self.dropped.append(outcome)
        for listener in [*self._outcome_listeners, *([item.on_outcome] if item.on_outcome else [])]:
            try:
                listener(outcome)
            except Exception:
                _LOGGER.exception("publish outcome listener failed")

    # ------------------------------------------------------------------ paho plumbing

    def _make_paho(self) -> paho.Client:
        s = self.settings
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=self._protocol,
            clean_session=True if self._protocol != MQTTProtocolVersion.MQTTv5 else None,
            reconnect_on_failure=False,  # our supervisor owns reconnects and their backoff
        )
        if s.username is not None:
            client.username_pw_set(s.username, s.password.reveal() if s.password is not None else None)
        client.will_set(self.availability_topic, b"offline", qos=1, retain=True)
        if s.tls.enabled:
            for label, path in (
                ("ca_file", s.tls.ca_file),
                ("cert_file", s.tls.cert_file),
                ("key_file", s.tls.key_file),
            ):
                if path is not None and not path.is_file():
                    raise HomeError(f"mqtt.tls.{label}: {path} does not exist", code="tls_config")
            try:
                client.tls_set(
                    ca_certs=str(s.tls.ca_file) if s.tls.ca_file else None,
                    certfile=str(s.tls.cert_file) if s.tls.cert_file else None,
                    keyfile=str(s.tls.key_file) if s.tls.key_file else None,
                    cert_reqs=ssl.CERT_NONE if s.tls.insecure else ssl.CERT_REQUIRED,
                )
                if s.tls.insecure:
                    _LOGGER.warning("mqtt.tls.insecure is on: the broker's certificate is NOT checked")
                    client.tls_insecure_set(True)
            except (ssl.SSLError, OSError, ValueError) as err:
                raise HomeError(f"cannot load the MQTT TLS files: {err}", code="tls_config") from err
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _run(self) -> None:
        s = self.settings
        host = s.host or ""
        while not self._stop.is_set():
            client = self._paho
            if client is None or client.protocol != self._protocol:
                try:
                    client = self._paho = self._make_paho()
                except HomeError:
                    _LOGGER.exception("MQTT client set-up failed")
                    return
            self.attempt_count += 1
            self._got_connack = False
            try:
                kwargs: dict[str, Any] = {}
                if self._protocol == MQTTProtocolVersion.MQTTv5:
                    kwargs["clean_start"] = True
                client.connect(host, s.port, keepalive=s.keepalive_s, **kwargs)
            except ssl.SSLCertVerificationError as err:
                self.last_error = "tls_failed"
                _LOGGER.error(
                    "TLS handshake with the MQTT broker %s:%s failed: the broker's certificate was "
                    "refused: %s (check mqtt.tls.ca_file and the broker's certificate)",
                    host,
                    s.port,
                    err,
                )
            except ssl.SSLError as err:
                self.last_error = "tls_failed"
                _LOGGER.error(
                    "TLS handshake with the MQTT broker %s:%s failed: is port %s a TLS port? (%s)",
                    host,
                    s.port,
                    s.port,
                    err,
                )
            except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError) as err:
                # A plain-MQTT port answers a TLS ClientHello by dropping the connection.
                self.last_error = "tls_failed" if s.tls.enabled else "unreachable"
                if s.tls.enabled:
                    _LOGGER.error(
                        "TLS handshake with the MQTT broker %s:%s failed: is port %s a TLS port? "
                        "(the broker dropped the connection: %s)",
                        host,
                        s.port,
                        s.port,
                        err,
                    )
                else:
                    _LOGGER.warning("the MQTT broker %s:%s dropped the connection: %s", host, s.port, err)
            except OSError as err:
                self.last_error = "unreachable"
                _LOGGER.warning("cannot reach the MQTT broker %s:%s: %s", host, s.port, err)
            else:
                self._loop(client)
                if self._fall_back_if_unsupported():
                    continue
            if self._stop.is_set():
                break
            delay = self._backoff.next()
            self.backoff_history.append(delay)
            _LOGGER.info("next MQTT connection attempt in %.1f s", delay)
            if self._sleep is not None:
                self._sleep(delay)
            else:
                self._stop.wait(delay)
        client = self._paho
        if client is not None:
            with contextlib.suppress(OSError, ValueError):
                client.disconnect()  # written at once: no paho thread runs this client

    def _loop(self, client: paho.Client) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            try:
                rc = client.loop(timeout=0.1)
            except Exception:  # a paho bug must not kill the supervisor
                _LOGGER.exception("MQTT network loop failed")
                rc = MQTTErrorCode.MQTT_ERR_UNKNOWN
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
            if not self._got_connack and time.monotonic() - started > self.connack_timeout_s:
                self.last_error = "no_connack"
                _LOGGER.error(
                    "the MQTT broker %s:%s accepted the connection but never answered CONNECT within "
                    "%.0f s (MQTT %s); is it an MQTT port, and is the broker overloaded?",
                    self.settings.host,
                    self.settings.port,
                    self.connack_timeout_s,
                    self.protocol,
                )
                with contextlib.suppress(OSError, ValueError, RuntimeError):
                    client.disconnect()
                break
        if self._connected:
            self._set_disconnected("network loop ended")

    def _fall_back_if_unsupported(self) -> bool:
        """In protocol "auto", a broker without MQTT 5 gets 3.1.1 on the next attempt at once."""
        if (
            self.settings.protocol == "auto"
            and self._protocol == MQTTProtocolVersion.MQTTv5
            and self.last_error == "protocol"
        ):
            _LOGGER.warning("the MQTT broker does not speak MQTT 5; falling back to 3.1.1")
            self._protocol = MQTTProtocolVersion.MQTTv311
            return True
        if (
            self.settings.protocol == "auto"
            and self._protocol == MQTTProtocolVersion.MQTTv5
            and not self._got_connack
            and not self._stop.is_set()
        ):
            # Some v3-only brokers close the socket without any CONNACK for a v5 CONNECT.
            if self.last_error == "no_connack":
                _LOGGER.warning("no answer to an MQTT 5 CONNECT; trying 3.1.1")
            else:
                _LOGGER.warning("the MQTT broker closed a v5 connect without answering; trying 3.1.1")
            self._protocol = MQTTProtocolVersion.MQTTv311
            return True
        return False

    def _on_connect(
        self, client: paho.Client, _userdata: Any, _flags: Any, reason_code: ReasonCode, _properties: Any
    ) -> None:
        try:
            self._got_connack = True
            if reason_code.is_failure:
                self._connect_refused(reason_code)
                return
            with self._lock:
                self._connected = True
                self.connect_count += 1
                self.last_error = None
                self._backoff.reset()
                _LOGGER.info(
                    "connected to MQTT broker %s:%s as %s (MQTT %s)",
                    self.settings.host,
                    self.settings.port,
                    self.client_id,
                    self.protocol,
                )
                client.publish(self.availability_topic, b"online", qos=1, retain=True)
                filters = [
                    (topic_filter, max(s.qos for s in subs.values()))
                    for topic_filter, subs in self._by_filter.items()
                ]
                for start in range(0, len(filters), _SUBSCRIBE_BATCH):
                    client.subscribe(filters[start : start + _SUBSCRIBE_BATCH])
                self._flush(client)
            self._connected_event.set()
            for hook in list(self._on_connect_hooks):
                self._safe_call(hook)
        except Exception:
            _LOGGER.exception("MQTT on_connect handling failed")

    def _connect_refused(self, reason_code: ReasonCode) -> None:
        value = reason_code.value
        if value in _AUTH_FAILURES:
            self.last_error = "auth_failed"
            _LOGGER.error(
                "the MQTT broker %s:%s refused the login of user %r: %s "
                "(check mqtt.username and mqtt.password); retrying with backoff",
                self.settings.host,
                self.settings.port,
                self.settings.username,
                reason_code,
            )
        elif value == _UNSUPPORTED_PROTOCOL:
            self.last_error = "protocol"
            _LOGGER.error("the MQTT broker refused MQTT %s: %s", self.protocol, reason_code)
        else:
            self.last_error = "refused"
            _LOGGER.error("the MQTT broker refused the connection: %s", reason_code)

    def _on_disconnect(
        self, _client: paho.Client, _userdata: Any, _flags: Any, reason_code: ReasonCode, _properties: Any
    ) -> None:
        try:
            if self._connected:
                self._set_disconnected(str(reason_code))
        except Exception:
            _LOGGER.exception("MQTT on_disconnect handling failed")

    def _set_disconnected(self, why: str) -> None:
        with self._lock:
            self._connected = False
            self._connected_event.clear()
        if self._stopping or self._stop.is_set():
            _LOGGER.info("disconnected from the MQTT broker")
        else:
            _LOGGER.warning("lost the MQTT connection (%s); reconnecting with backoff", why)

    def _on_message(self, _client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        try:
            payload = msg.payload
            limit = self.settings.max_payload_bytes
            try:
                topic = msg.topic  # decodes UTF-8; a broken topic raises
            except UnicodeDecodeError:
                _LOGGER.warning("ignored a message whose topic is not UTF-8")
                return
            if len(payload) > limit:
                _LOGGER.warning(
                    "ignored a %d-byte payload on %s (limit %d bytes)", len(payload), topic, limit
                )
                return
            message = Message(topic, bytes(payload), bool(msg.retain), int(msg.qos))
            with self._lock:
                subs = list(self._by_filter.get(topic, {}).values())
                for topic_filter, wild in self._wildcards.items():
                    if paho.topic_matches_sub(topic_filter, topic):
                        subs.extend(wild.values())
            handlers = (
                [s.handler for s in sorted(subs, key=lambda s: s.id)]
                if len(subs) > 1
                else [s.handler for s in subs]
            )
            for handler in handlers:
                try:
                    handler(message)
                except Exception:
                    _LOGGER.exception("MQTT handler for %s failed", topic)
        except Exception:
            _LOGGER.exception("MQTT on_message failed")

    @staticmethod
    def _safe_call(hook: Callable[[], None]) -> None:
        try:
            hook()
        except Exception:
            _LOGGER.exception("MQTT on-connect hook failed")
