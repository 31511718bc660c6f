"""Speaks through the real espeak sink and PortAudio in a child process (ALSA file plugin).

    python tts_child.py DEVICE TEXT [--volume V]

PortAudio reads the ALSA configuration at import, so this runs with the test's
environment. Prints one JSON line: completed, first_audio (bool), player class.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from assistant.config import AudioSettings, Settings, TtsSettings
from assistant.tts import make_tts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("device")
    parser.add_argument("text")
    parser.add_argument("--volume", type=float, default=1.0)
    args = parser.parse_args()
    settings = Settings(audio=AudioSettings(output_device=args.device, volume=args.volume),
                        tts=TtsSettings(kind="espeak"))
    sink = make_tts(settings)
    result = sink.speak(args.text, threading.Event())
    player = type(getattr(sink, "player", None)).__name__
    print(json.dumps({"completed": result.completed, "first_audio": result.first_audio_at is not None,
                      "player": player}))


if __name__ == "__main__":
    main()
