"""``assistant home`` against a real mosquitto: retained configs and states in, the report out."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from assistant.cli import main as cli_main
from assistant.config import HomeSettings, Settings
from assistant.home import report
from tests.support.mosquitto import Broker
from tests.support.sniffer import Sniffer, mqtt_settings


def _retain_home(sniffer: Sniffer, prefix: str, base: str) -> None:
    configs = {
        f"{prefix}/light/kitchen/config": {
            "schema": "json",
            "name": None,
            "cmd_t": f"{base}/kitchen/set",
            "stat_t": f"{base}/kitchen",
            "brightness": True,
            "sup_clrm": ["xy"],
            "dev": {"ids": ["k1"], "name": "Kitchen Light", "sa": "Kitchen"},
        },
        f"{prefix}/number/k1/calibration/config": {
            "cmd_t": f"{base}/cal/set",
            "dev_cla": "temperature_delta",
            "dev": {"ids": ["k1"], "name": "K"},
        },
        f"{prefix}/update/k1/firmware/config": {"stat_t": f"{base}/fw"},
        f"{prefix}/switch/broken/config": "not json",
    }
    for topic, config in configs.items():
        sniffer.publish(topic, config if isinstance(config, str) else json.dumps(config), retain=True)
    sniffer.publish(f"{base}/kitchen", json.dumps({"state": "ON", "brightness": 127}), retain=True)


def test_report_lists_entities_and_refusals_from_the_broker(
    broker: Broker, sniffer: Sniffer, uniq: str
) -> None:
    settings = Settings(site="den", mqtt=mqtt_settings(broker, uniq))
    _retain_home(sniffer, f"ha_{uniq}", uniq)
    lines: list[str] = []
    result = report.collect(settings, wait_s=8.0, quiet_s=0.5, progress=lines.append)
    assert result.connected and result.waited_s < 8.0, "it stops once nothing new arrives"
    assert any("connected" in line for line in lines)
    (light,) = result.entities
    assert light["name"] == "kitchen light" and light["area"] == "kitchen" and light["domain"] == "light"
    assert light["capabilities"] == {"dim": True, "color_temp": False, "color": True}
    assert light["state"] == "on" and light["attributes"]["brightness"] == 50
    assert "HassLightSet" in light["tools"]
    reasons = {r["topic"].split("/", 1)[1]: r["reason"] for r in result.refused}
    assert "temperature_delta" in reasons["number/k1/calibration/config"]
    assert "no module for the update domain" in reasons["update/k1/firmware/config"]
    assert "not JSON" in reasons["switch/broken/config"]
    text = report.render_text(result)
    assert "'kitchen light' (light) area kitchen: on (brightness 50)" in text
    assert "Refused:" in text and "temperature_delta" in text
    # nothing of the assistant's own device was announced by the report
    assert not [s for s in sniffer.seen if s.topic.startswith(f"ha_{uniq}/device/")]


def test_cli_home_json_and_no_broker(
    broker: Broker, sniffer: Sniffer, uniq: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _retain_home(sniffer, f"ha_{uniq}", uniq)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"mqtt:\n  host: {broker.host}\n  port: {broker.port}\n  discovery_prefix: ha_{uniq}\n"
        f"  client_id: report-{uniq}\n",
        encoding="utf-8",
    )
    assert cli_main(["home", "--json", "--wait", "8", "-c", str(config)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [e["name"] for e in data["entities"]] == ["kitchen light"]
    assert len(data["refused"]) == 3
    out = io.StringIO()
    manual = Settings(
        home=HomeSettings(entities=({"component": "switch", "name": "Heater", "cmd_t": "h/set"},))
    )
    assert report.main(manual, out=out, err=io.StringIO()) == 0
    assert "No MQTT broker configured" in out.getvalue() and "'heater' (switch)" in out.getvalue()
