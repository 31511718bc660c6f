"""One coded error hierarchy for the whole pipeline.

Every failure that reaches a user or a log carries a short stable ``code`` so that
logs, MQTT events and tests can match on it without parsing prose.
"""

from __future__ import annotations


class AssistantError(Exception):
    """Base error: a stable machine-readable code plus a human message."""

    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        """The human-readable message."""
        return str(self.args[0]) if self.args else self.code


class ConfigError(AssistantError):
    """The settings file (or environment) is invalid; carries every problem at once."""

    code = "config_invalid"

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class AudioError(AssistantError):
    """Audio input or output failed (device missing, bad WAV, ...)."""

    code = "audio_error"


class BrainError(AssistantError):
    """Speech could not be turned into tool calls."""

    code = "brain_error"


class ToolError(AssistantError):
    """A tool call was refused or its handler failed."""

    code = "tool_error"


class HomeError(AssistantError):
    """MQTT / Home Assistant side failed."""

    code = "home_error"


class TtsError(AssistantError):
    """Speech synthesis or playback failed."""

    code = "tts_error"


class ModelFilesError(AssistantError):
    """Model files are missing or do not match the expected contract."""

    code = "model_files_invalid"
