"""All of home/ wired together from settings: client, inventory, home tools and the assistant device.

The daemon (or ``assistant process``) builds one ``HomeStack``, hands the tools to the
registry whenever they change, and starts it::

    home = build_home(settings, on_say=speak, on_listen_pressed=listen)
    home.control.add_listener(lambda tools: registry.set_group("home", tools))
    registry.set_group("home", home.control.tools())
    home.start()
    ...
    home.stop()

Without ``mqtt.host`` the client stays idle and the tools answer in dry-run mode (what
they would have sent is kept in ``control.dry_run``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from assistant.config import Settings
from assistant.home.client import MqttClient
from assistant.home.control import HomeControl
from assistant.home.device import AssistantDevice
from assistant.home.inventory import Inventory


@dataclass
class HomeStack:
    """The MQTT side of the assistant."""

    client: MqttClient
    inventory: Inventory
    control: HomeControl
    device: AssistantDevice

    def start(self) -> None:
        """Subscribe everything and connect in the background (raises HomeError for bad TLS files)."""
        if self.client.enabled:
            self.device.start()
            self.inventory.start()
        self.client.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Availability offline, clean disconnect, no pending timers."""
        self.inventory.close()
        self.client.stop(timeout)


def build_home(
    settings: Settings,
    *,
    version: str = "0.1.0",
    on_listen_pressed: Callable[[], None] | None = None,
    on_say: Callable[[str], None] | None = None,
    on_mute: Callable[[bool], None] | None = None,
    on_volume: Callable[[int], None] | None = None,
    inventory_debounce_s: float = 0.3,
) -> HomeStack:
    """A HomeStack for ``settings`` (nothing connects until ``start``)."""
    mqtt = settings.mqtt
    client = MqttClient(mqtt, site=settings.site)
    device = AssistantDevice(
        client,
        site=settings.site,
        discovery_prefix=mqtt.discovery_prefix,
        base_topic=mqtt.base_topic,
        hermes=mqtt.hermes,
        version=version,
        on_listen_pressed=on_listen_pressed,
        on_say=on_say,
        on_mute=on_mute,
        on_volume=on_volume,
    )
    inventory = Inventory(
        client if client.enabled else None,
        discovery_prefix=mqtt.discovery_prefix,
        manual_entities=settings.home.entities,
        ignore_device_ids={device.device_id},
        debounce_s=inventory_debounce_s,
    )
    control = HomeControl(inventory, client, sensitive_extra=settings.home.sensitive_extra,
                          aliases=settings.home.aliases, area=settings.home.area,
                          alarm_code=settings.home.alarm_code,
                          site_areas={s.site: s.area for s in settings.wyoming.satellites})
    return HomeStack(client, inventory, control, device)
