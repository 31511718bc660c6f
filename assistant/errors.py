"""One coded error hierarchy for the whole pipeline.

Every failure that reaches a user or a log carries a short stable ``code`` so that
logs, MQTT events and tests can match on it without parsing prose.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Every error code the package uses: the one catalogue (tests/foundation checks it).

    Codes travel as plain strings (``AssistantError.code``, ``ToolResult.error_code``,
    the ``code`` of an ERROR event on MQTT), so a module may write the literal; it must
    be one of these. Grouped by the stage that raises them.
    """

    # generic and per-stage defaults of the hierarchy below
    ERROR = "error"
    INTERNAL_ERROR = "internal_error"
    CONFIG_INVALID = "config_invalid"
    AUDIO_ERROR = "audio_error"
    BRAIN_ERROR = "brain_error"
    TOOL_ERROR = "tool_error"
    HOME_ERROR = "home_error"
    TTS_ERROR = "tts_error"
    MODEL_FILES_INVALID = "model_files_invalid"
    # audio in: devices, sources, WAV files, VAD
    AUDIO_SOURCE_FAILED = "audio_source_failed"
    COMMAND_FAILED = "command_failed"
    DEVICE_FAILED = "device_failed"
    DEVICE_MISSING = "device_missing"
    PORTAUDIO_MISSING = "portaudio_missing"
    PLAYBACK_FAILED = "playback_failed"
    SOURCE_INVALID = "source_invalid"
    VAD_FRAME_SIZE = "vad_frame_size"
    VAD_INVALID = "vad_invalid"
    VAD_UNAVAILABLE = "vad_unavailable"
    WAV_INVALID = "wav_invalid"
    WAV_MISSING = "wav_missing"
    WAV_TOO_LARGE = "wav_too_large"
    WAV_TOO_LONG = "wav_too_long"
    WAV_TRUNCATED = "wav_truncated"
    WAV_UNREADABLE = "wav_unreadable"
    # the orchestrator's stages
    PIPELINE_FAILED = "pipeline_failed"
    SEGMENTER_FAILED = "segmenter_failed"
    WAKE_FAILED = "wake_failed"
    WAKE_UNAVAILABLE = "wake_unavailable"
    BRAIN_FAILED = "brain_failed"
    TTS_FAILED = "tts_failed"
    # brains
    BRAIN_CONFIG = "brain_config"
    AUDIO_TOKEN_MISMATCH = "audio_token_mismatch"  # noqa: S105 - an error code, not a password
    CANCELLED = "cancelled"
    CHAT_TEMPLATE_INVALID = "chat_template_invalid"
    CHAT_TEMPLATE_MISMATCH = "chat_template_mismatch"
    NO_BATCH = "no_batch"
    REMOTE_UNAVAILABLE = "remote_unavailable"
    """The remote brain's server could not be reached, or was too slow."""
    REMOTE_PROTOCOL = "remote_protocol"
    """The remote brain's server answered with something that is not a valid completion."""
    # tools: schema validation, router, confirmation
    INVALID_ARGUMENTS = "invalid_arguments"
    MISSING_ARGUMENT = "missing_argument"
    UNEXPECTED_ARGUMENT = "unexpected_argument"
    WRONG_TYPE = "wrong_type"
    OUT_OF_RANGE = "out_of_range"
    NOT_ALLOWED = "not_allowed"
    SCHEMA_INVALID = "schema_invalid"
    UNKNOWN_TOOL = "unknown_tool"
    YAML_TOOL_INVALID = "yaml_tool_invalid"
    CONFIRMATION_TIMEOUT = "confirmation_timeout"
    NOTHING_PENDING = "nothing_pending"
    SUPERSEDED = "superseded"
    # skills (timers)
    EXISTS = "exists"
    NOT_FOUND = "not_found"
    NO_DURATION = "no_duration"
    TOO_MANY = "too_many"
    # home: MQTT and entity resolution
    MQTT_OFFLINE = "mqtt_offline"
    """The broker is configured but not connected now."""
    MQTT_DISABLED = "mqtt_disabled"
    """No broker is configured (``mqtt.host`` unset)."""
    BAD_TOPIC = "bad_topic"
    TLS_CONFIG = "tls_config"
    AMBIGUOUS = "ambiguous"
    MISSING_VALUE = "missing_value"
    NO_MATCH = "no_match"
    NO_TARGET = "no_target"
    UNSUPPORTED = "unsupported"
    # speech out
    TTS_BAD_AUDIO = "tts_bad_audio"
    TTS_CONFIG = "tts_config"
    TTS_OUTPUT_FAILED = "tts_output_failed"
    TTS_OUTPUT_UNAVAILABLE = "tts_output_unavailable"
    TTS_PUBLISH_FAILED = "tts_publish_failed"
    TTS_SYNTHESIS_FAILED = "tts_synthesis_failed"
    TTS_UNAVAILABLE = "tts_unavailable"
    # the Wyoming server (sent to the peer in an `error` event before it is disconnected)
    WYOMING_BAD_EVENT = "wyoming_bad_event"
    WYOMING_TOO_LARGE = "wyoming_too_large"
    WYOMING_OUT_OF_ORDER = "wyoming_out_of_order"
    WYOMING_NOT_SERVED = "wyoming_not_served"
    WYOMING_BUSY = "wyoming_busy"
    WYOMING_TIMEOUT = "wyoming_timeout"
    # our satellite endpoint: a turn handed to Home Assistant that ended without its reply
    HA_PIPELINE_FAILED = "ha_pipeline_failed"
    """HA's pipeline reported an error (its code and message are in the text)."""
    HA_SATELLITE_LOST = "ha_satellite_lost"
    """The connection to HA ended, or HA went quiet, after the turn was handed over."""
    STALE_COMMAND = "stale_command"
    """A satellite's command was heard longer ago than its freshness: not acted on."""


class AssistantError(Exception):
    """Base error: a stable machine-readable code plus a human message."""

    code: str = ErrorCode.ERROR

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = str(code)

    @property
    def message(self) -> str:
        """The human-readable message."""
        return str(self.args[0]) if self.args else self.code


def coded(err: BaseException, kind: type[AssistantError], code: ErrorCode) -> AssistantError:
    """``err`` as an AssistantError with a code: unexpected exceptions are wrapped, the cause kept."""
    if isinstance(err, AssistantError):
        return err
    wrapped = kind(f"{type(err).__name__}: {err}", code=code)
    wrapped.__cause__ = err
    return wrapped


class ConfigError(AssistantError):
    """The settings file (or environment) is invalid; carries every problem at once."""

    code = ErrorCode.CONFIG_INVALID.value

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class AudioError(AssistantError):
    """Audio input or output failed (device missing, bad WAV, ...)."""

    code = ErrorCode.AUDIO_ERROR.value


class BrainError(AssistantError):
    """Speech could not be turned into tool calls."""

    code = ErrorCode.BRAIN_ERROR.value


class ToolError(AssistantError):
    """A tool call was refused or its handler failed."""

    code = ErrorCode.TOOL_ERROR.value


class HomeError(AssistantError):
    """MQTT / Home Assistant side failed."""

    code = ErrorCode.HOME_ERROR.value


class TtsError(AssistantError):
    """Speech synthesis or playback failed."""

    code = ErrorCode.TTS_ERROR.value


class WakeError(AssistantError):
    """The wake-word engine or a model could not be loaded."""

    code = ErrorCode.WAKE_UNAVAILABLE.value


class ModelFilesError(AssistantError):
    """Model files are missing or do not match the expected contract."""

    code = ErrorCode.MODEL_FILES_INVALID.value
