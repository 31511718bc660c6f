"""One orchestrator under test: real wake words, segmenter and TTS streaming, an in-memory
frame source, recording earcons and sink, and the brain and router a test gives it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from assistant.audio.frontend import Segmenter
from assistant.brains.base import Brain, ToolGateway
from assistant.capabilities import Closable
from assistant.config import Settings, WakeSettings, WakeWordSettings
from assistant.daemon import Orchestrator
from assistant.wake import WakeDetector
from tests.support.pipeline import (
    EventLog,
    FakeRouter,
    MemorySource,
    RecordingEarcons,
    RecordingSink,
    Segment,
)


def rig_settings(tmp_path: Path, **wake: Any) -> Settings:
    """Wake on "okay nabu", stop on "hey mycroft", state in ``tmp_path``."""
    return Settings(
        state_dir=tmp_path,
        wake=WakeSettings(words=(WakeWordSettings("okay_nabu"),), stop_words=("hey_mycroft",), **wake),
    )


class Rig:
    """An orchestrator wired to recording parts; ``run`` drives it until the source ends."""

    def __init__(
        self, tmp_path: Path, segments: list[Segment], brain: Brain, *, router: ToolGateway | None = None,
        tts: Any = None, paced: bool = False, hang: bool = False, settings: Settings | None = None,
        **kwargs: Any,
    ) -> None:
        self.settings = settings if settings is not None else rig_settings(tmp_path)
        self.source = MemorySource(segments, paced=paced, hang=hang)
        self.brain = brain
        self.router: Any = router if router is not None else FakeRouter()
        self.sink = tts if tts is not None else RecordingSink()
        self.earcons = RecordingEarcons()
        self.log = EventLog()
        self.orch = Orchestrator(
            self.settings, source=self.source, segmenter=Segmenter(self.settings.vad), brain=brain,
            router=self.router, tts=self.sink, wake=WakeDetector.from_settings(self.settings.wake),
            earcons=self.earcons, listeners=[self.log], **kwargs,
        )

    def run(self, timeout: float = 30.0) -> None:
        """Run the orchestrator to its end (``timeout`` bounds a hang); close a closable router."""
        try:
            asyncio.run(asyncio.wait_for(self.orch.run(), timeout))
        finally:
            if isinstance(self.router, Closable):
                self.router.close()
