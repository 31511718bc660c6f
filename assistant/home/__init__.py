"""Home Assistant over MQTT.

client.py     robust paho-mqtt 2.x connection (backoff, offline queue, freshness, TLS)
discovery.py  HA MQTT discovery payloads -> validated Entity objects (abbreviations, ~, cmps)
inventory.py  entities + tracked state + spoken-name matching
domains/      one module per HA domain: config schema, state reading, command encoding
templates.py  sandboxed value_template / *_command_template evaluation
control.py    the HassTurnOn/... tools over the inventory
device.py     the assistant itself as an HA device
service.py    build_home(settings): everything wired together
report.py     `assistant home`: what was learned and what was refused, and why
"""
