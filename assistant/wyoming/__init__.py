"""Home Assistant's voice protocol, Wyoming (the ``wyoming`` package).

- hub.py: the hub that connects to existing wyoming-satellite devices (one long-lived
  link per satellite, with reconnect and backoff), runs their speech through the same
  brain and router as the local microphone, and sends the reply back as audio;
  wire.py reads their events with bounds; hub_announce.py carries announcements
  (timers) to the satellite whose site asked; hub_state.py keeps each satellite's state
  for ``assistant home``.
- server.py: a Wyoming server Home Assistant's wyoming integration can add.
"""
