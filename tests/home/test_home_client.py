"""MqttClient against a real mosquitto: availability, outages, queueing, auth, TLS, hostile input."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.config import MqttSettings, Secret, TlsSettings
from assistant.errors import HomeError
from assistant.home.client import Backoff, Message, MqttClient, PublishOutcome, PublishStatus
from tests.support.mosquitto import Broker, free_port, make_tls_material
from tests.support.sniffer import Sniffer, mqtt_settings, wait_until


@pytest.fixture
def clients() -> Iterator[list[MqttClient]]:
    """Collects clients made by a test and stops them afterwards."""
    made: list[MqttClient] = []
    yield made
    for client in made:
        client.stop()


def _start(clients: list[MqttClient], settings: MqttSettings, **kwargs: object) -> MqttClient:
    kwargs.setdefault("backoff_min_s", 0.05)
    kwargs.setdefault("backoff_max_s", 0.2)
    client = MqttClient(settings, site="kitchen", **kwargs)  # type: ignore[arg-type]
    clients.append(client)
    client.start()
    return client


def test_backoff_doubles_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(1.0, 60.0)
    assert [backoff.next() for _ in range(9)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    backoff.reset()
    assert backoff.next() == 1
    with pytest.raises(ValueError):
        Backoff(0, 1)


def test_availability_online_on_connect_and_offline_on_stop(
    broker: Broker, sniffer: Sniffer, uniq: str, clients: list[MqttClient]
) -> None:
    client = _start(clients, mqtt_settings(broker, uniq))
    assert client.wait_connected(5)
    assert client.availability_topic == f"as_{uniq}/kitchen/availability"
    assert sniffer.wait_for(client.availability_topic, b"online")
    client.stop()
    assert sniffer.wait_for(client.availability_topic, b"offline")


def test_subscription_handlers_and_hostile_payloads(
    broker: Broker, sniffer: Sniffer, uniq: str, clients: list[MqttClient], caplog: pytest.LogCaptureFixture
) -> None:
    client = _start(clients, mqtt_settings(broker, uniq, max_payload_bytes=65536))
    got: list[Message] = []

    def handler(message: Message) -> None:
        got.append(message)
        message.json()  # raises on non-JSON: must be logged, never escape

    client.subscribe(f"{uniq}/in/#", handler)
    assert client.wait_connected(5)

    def probe() -> bool:  # the subscription is live once a probe comes through
        sniffer.publish(f"{uniq}/in/probe", b"{}")
        return bool(wait_until(lambda: bool(got), 0.2))

    assert wait_until(probe, 5)
    got.clear()
    with caplog.at_level(logging.WARNING):
        sniffer.publish(f"{uniq}/in/big", b"x" * 1_000_000)
        sniffer.publish(f"{uniq}/in/binary", b"\xff\xfe\x00garbage")
        sniffer.publish(f"{uniq}/in/text", b"not json")
        sniffer.publish(f"{uniq}/in/ok", b'{"a": 1}')
        assert wait_until(lambda: any(m.topic.endswith("/ok") for m in got))
    topics = [m.topic.rsplit("/", 1)[-1] for m in got]
    assert topics == ["binary", "text", "ok"]
    assert "ignored a 1000000-byte payload" in caplog.text
    assert client.connected  # nothing above broke the connection
    with pytest.raises(ValueError, match="not UTF-8"):
        got[0].text()


def test_broker_restart_reconnects_delivers_fresh_once_and_drops_stale(
    broker: Broker, uniq: str, clients: list[MqttClient]
) -> None:
    now = [1000.0]
    gate = threading.Event()

    def sleep(_delay: float) -> None:
        gate.wait(5)  # hold reconnects until the test has its observer in place

    client = _start(clients, mqtt_settings(broker, uniq, freshness_s=10.0), clock=lambda: now[0], sleep=sleep)
    subscribed: list[Message] = []
    client.subscribe(f"{uniq}/echo", subscribed.append)
    reconnects: list[int] = []
    client.add_on_connect(lambda: reconnects.append(client.connect_count))
    assert client.wait_connected(5)
    outcomes: list[PublishOutcome] = []

    broker.stop(kill=True)
    assert wait_until(lambda: not client.connected)
    stale = client.publish_command(f"{uniq}/cmd/stale", "ON", on_outcome=outcomes.append)
    now[0] += 10.5
    fresh = client.publish_command(f"{uniq}/cmd/fresh", "ON", on_outcome=outcomes.append)
    now[0] += 1.0  # stale is now 11.5 s old, fresh 1 s
    assert stale.status is PublishStatus.QUEUED and fresh.status is PublishStatus.QUEUED
    with pytest.raises(HomeError) as err:
        client.publish_command(f"{uniq}/cmd/unlock", "UNLOCK", sensitive=True)
    assert err.value.code == "mqtt_offline"

    broker.start()
    observer = Sniffer(broker)
    try:
        gate.set()
        assert observer.wait_for(client.availability_topic, b"online", timeout=5)
        assert observer.wait_for(f"{uniq}/cmd/fresh", b"ON", timeout=5)
        # re-subscribed after the reconnect: an echo reaches the handler
        observer.publish(f"{uniq}/echo", "hello")
        assert wait_until(lambda: len(subscribed) == 1)
        wait_until(lambda: False, 0.3)  # give a duplicate the chance to show up
        assert observer.on(f"{uniq}/cmd/fresh") == [b"ON"]
        assert observer.on(f"{uniq}/cmd/stale") == []
        assert observer.on(f"{uniq}/cmd/unlock") == []
    finally:
        observer.close()
    statuses = {o.topic.rsplit("/", 1)[-1]: o.status for o in outcomes}
    assert statuses == {"stale": PublishStatus.DROPPED_STALE, "fresh": PublishStatus.SENT}
    assert [o.topic for o in client.dropped] == [f"{uniq}/cmd/stale"]
    assert reconnects[-1] == 2


def test_offline_queue_is_bounded(broker: Broker, uniq: str) -> None:
    settings = mqtt_settings(broker, uniq, port=free_port(), queue_size=3)
    client = MqttClient(settings, site="x", backoff_min_s=0.05, backoff_max_s=0.1)
    client.start()
    try:
        dropped: list[PublishOutcome] = []
        client.add_outcome_listener(dropped.append)
        for i in range(5):
            client.publish_command(f"{uniq}/c{i}", "ON")
        assert client.queued() == 3
        assert [o.topic for o in dropped] == [f"{uniq}/c0", f"{uniq}/c1"]
        assert all(o.status is PublishStatus.DROPPED_FULL for o in dropped)
        # retained state coalesces: only the newest value per topic waits
        client.publish(f"{uniq}/state", "a", retain=True)
        client.publish(f"{uniq}/state", "b", retain=True)
        assert client.queued() == 3
    finally:
        client.stop()


def test_wrong_password_is_a_clear_error_and_retries_with_backoff(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Broker(tmp_path, users={"va": "right-pw"}) as secured:
        delays: list[float] = []

        def sleep(delay: float) -> None:
            delays.append(delay)
            threading.Event().wait(0.005)

        settings = MqttSettings(host=secured.host, port=secured.port, username="va", password=Secret("wrong"))
        client = MqttClient(settings, site="x", sleep=sleep)  # real 1 s .. 60 s bounds, sleeps skipped
        with caplog.at_level(logging.ERROR):
            client.start()
            try:
                assert wait_until(lambda: len(delays) >= 8, timeout=10)
            finally:
                client.stop()
        assert delays[:8] == [1, 2, 4, 8, 16, 32, 60, 60]
        assert client.last_error == "auth_failed" and client.connect_count == 0
        assert "refused the login of user 'va'" in caplog.text
        assert "wrong" not in caplog.text.replace("wrong password", "")

        good = MqttClient(
            MqttSettings(host=secured.host, port=secured.port, username="va", password=Secret("right-pw")),
            site="x",
        )
        good.start()
        try:
            assert good.wait_connected(5)
        finally:
            good.stop()


def test_tls_with_a_throwaway_ca(tmp_path: Path) -> None:
    material = make_tls_material(tmp_path)
    with Broker(tmp_path, tls=material, name="tls", require_client_cert=True) as secured:
        trusted = MqttClient(
            MqttSettings(
                host=secured.host,
                port=secured.port,
                tls=TlsSettings(
                    enabled=True,
                    ca_file=material.ca_file,
                    cert_file=material.client_cert,
                    key_file=material.client_key,
                ),
            ),
            site="tls",
            backoff_min_s=0.05,
            backoff_max_s=0.1,
        )
        untrusted = MqttClient(
            MqttSettings(
                host=secured.host,
                port=secured.port,
                tls=TlsSettings(
                    enabled=True,
                    ca_file=material.other_ca_file,
                    cert_file=material.client_cert,
                    key_file=material.client_key,
                ),
            ),
            site="tls2",
            backoff_min_s=0.05,
            backoff_max_s=0.1,
        )
        try:
            trusted.start()
            untrusted.start()
            assert trusted.wait_connected(5)
            assert wait_until(lambda: untrusted.attempt_count >= 2)
            assert not untrusted.connected and untrusted.last_error == "tls_failed"
        finally:
            trusted.stop()
            untrusted.stop()
    missing = MqttClient(
        MqttSettings(host="127.0.0.1", tls=TlsSettings(enabled=True, ca_file=tmp_path / "nope.pem"))
    )
    with pytest.raises(HomeError) as err:
        missing.start()
    assert err.value.code == "tls_config"


def _fake_v311_only_broker(server: socket.socket, stop: threading.Event) -> None:
    """A stand-in for a broker without MQTT 5 (mosquitto speaks both, so it cannot play this part)."""
    server.settimeout(0.1)
    while not stop.is_set():
        try:
            conn, _ = server.accept()
        except TimeoutError:
            continue
        with conn:
            conn.settimeout(2)
            data = conn.recv(1024)
            # fixed header (type + 1-byte length), then protocol name "MQTT" (2 + 4 bytes), then level
            level = data[8] if len(data) > 8 else 0
            if level != 4:
                conn.sendall(b"\x20\x02\x00\x01")  # CONNACK: unacceptable protocol version
                continue
            conn.sendall(b"\x20\x02\x00\x00")
            while not stop.is_set():
                try:
                    if not conn.recv(1024):
                        break
                except TimeoutError:
                    continue
                except OSError:
                    break


def test_protocol_auto_falls_back_to_311(clients: list[MqttClient]) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    stop = threading.Event()
    thread = threading.Thread(target=_fake_v311_only_broker, args=(server, stop), daemon=True)
    thread.start()
    try:
        client = _start(
            clients, MqttSettings(host="127.0.0.1", port=server.getsockname()[1], protocol="auto")
        )
        assert client.wait_connected(5)
        assert client.protocol == "3.1.1"
        client.stop()
    finally:
        stop.set()
        thread.join(3)
        server.close()


def test_no_broker_configured_refuses_publishes() -> None:
    client = MqttClient(MqttSettings(host=None))
    client.start()
    assert not client.enabled
    with pytest.raises(HomeError) as err:
        client.publish("a/b", "x")
    assert err.value.code == "mqtt_disabled"
    with pytest.raises(HomeError):
        client.subscribe("", lambda m: None)
