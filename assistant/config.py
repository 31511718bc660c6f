"""Settings: one YAML file loaded once into frozen, typed, documented dataclasses.

Search order: ``--config``, ``$ASSISTANT_CONFIG``, ``/etc/assistant/config.yaml``,
``~/.config/assistant/config.yaml``; built-in defaults when none exists.

Every problem in a file is collected and reported together, each with its key path
and line number, before any hardware is touched. Unknown keys are errors with a
"did you mean". Secret fields (type ``Secret``) may be given inline, as
``{env: NAME}``, as ``{file: /path}``, or through ``ASSISTANT_<PATH>`` (for example
``ASSISTANT_MQTT_PASSWORD``); they are masked wherever settings are printed.

The dataclass field docstrings are the documentation of each key.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from assistant.errors import ConfigError


class Secret:
    """A string that never shows itself in repr, str or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret value; call only where it is used."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class AudioSettings:
    """Audio input and output."""

    source: Literal["mic", "command", "stdin"] = "mic"
    """Where live audio comes from: a PortAudio microphone, a command printing raw PCM, or stdin."""
    device: str | int | None = None
    """Input device: index, or a substring of its name (see `assistant devices`); None = default."""
    sample_rate: int = 16000
    """Rate the device is opened at (Hz); converted to 16 kHz inside."""
    channels: int = 1
    """Channels the device is opened with; mixed down to mono inside."""
    block_ms: int = 30
    """Capture block length in milliseconds (10, 20 or 30)."""
    queue_blocks: int = 100
    """Bound of the capture queue in blocks; overflow is counted and logged, never blocks."""
    command: str | None = None
    """For source=command: a shell-free argv string printing raw PCM (arecord-style)."""
    command_format: Literal["s16le"] = "s16le"
    """Sample format of raw PCM from a command or stdin."""
    command_rate: int = 16000
    """Sample rate of raw PCM from a command or stdin."""
    command_channels: int = 1
    """Channel count of raw PCM from a command or stdin."""
    output_device: str | int | None = None
    """Output device for speech and earcons: index or name substring; None = default."""
    volume: float = 1.0
    """Output volume, 0.0 to 1.0."""
    retry_max_s: float = 30.0
    """Longest wait between attempts to reopen a missing or failed device."""


@dataclass(frozen=True)
class VadSettings:
    """Voice activity detection and endpointing."""

    engine: Literal["webrtc", "silero"] = "webrtc"
    """VAD engine: webrtcvad, or Silero's ONNX model (needs the silero-vad wheel's file)."""
    aggressiveness: int = 2
    """webrtcvad aggressiveness, 0 (least) to 3 (most aggressive filtering of non-speech)."""
    frame_ms: int = 30
    """VAD frame length: 10, 20 or 30 ms."""
    silero_threshold: float = 0.5
    """Speech probability above which a Silero frame counts as voiced."""
    speech_start_ms: int = 90
    """Voiced audio needed before an utterance starts."""
    silence_end_ms: int = 600
    """Silence that ends an utterance."""
    pre_roll_ms: int = 300
    """Audio kept from before the detected start, so the first syllable is not lost."""
    min_utterance_ms: int = 250
    """Shorter bursts of voice are dropped as noise."""
    max_utterance_s: float = 30.0
    """Longest utterance (Gemma 4's audio limit is 30 s); cut there."""
    no_speech_timeout_s: float = 8.0
    """After a wake, give up when nothing is said for this long."""
    min_speech_dbfs: float = -60.0
    """Frames quieter than this (RMS, dB full scale) never count as speech; -100 turns the gate off."""


@dataclass(frozen=True)
class WakeWordSettings:
    """One wake word."""

    model: str = "okay_nabu"
    """Built-in pymicro-wakeword name (okay_nabu, hey_jarvis, hey_mycroft, alexa) or a .json path."""
    threshold: float | None = None
    """Probability cutoff; None uses the model's own."""
    refractory_s: float = 2.0
    """Ignore further detections of this word for this long."""


@dataclass(frozen=True)
class WakeSettings:
    """Wake word detection."""

    enabled: bool = True
    """False: listen only on push-to-talk (button, SIGUSR1, CLI)."""
    words: tuple[WakeWordSettings, ...] = (WakeWordSettings(),)
    """Wake words listened for at once."""
    stop_words: tuple[str, ...] = ()
    """Extra words that cancel speech output (barge-in); the wake words always do."""
    barge_in: bool = True
    """Listen for the wake/stop word while speaking, to cancel speech."""
    follow_up_s: float = 0.0
    """After a reply, listen this long without the wake word (0 = off)."""


@dataclass(frozen=True)
class GemmaSettings:
    """The Gemma 4 brain."""

    model_dir: Path | None = None
    """Folder with the onnx-community export (see `assistant models pull`)."""
    variant: Literal["fp32", "fp16", "q4", "q4f16", "quantized"] = "q4"
    """Decoder and embedding precision."""
    audio_variant: Literal["fp32", "fp16", "q4", "q4f16", "quantized"] = "fp32"
    """Audio-encoder precision (the audio path degrades badly under int4)."""
    intra_op_threads: int = 0
    """ONNX Runtime intra-op threads; 0 lets ONNX Runtime choose."""
    thinking: bool = False
    """Let the model think before answering (slower)."""
    max_new_tokens: int = 128
    """Generation bound per round."""
    max_rounds: int = 3
    """Tool-call rounds per utterance."""
    temperature: float = 0.0
    """0 = greedy decoding; above 0 samples with top_k/top_p."""
    top_k: int = 64
    """Sampling: keep this many most likely tokens."""
    top_p: float = 0.95
    """Sampling: nucleus probability mass."""
    templated_reply: bool = True
    """Speak the router's templated reply and skip the model's second pass for simple commands."""


@dataclass(frozen=True)
class PhraseSettings:
    """The phrase brain (pocketsphinx grammar + hassil)."""

    language: str = "en"
    """Sentence-template language."""
    rejection_threshold: float = 60.0
    """Cost (natural log, per word) of the filler-word path competing with the commands; speech
    decoded through it is rejected. Lower rejects more. See assistant.brains.phrase.brain."""
    confidence_threshold: float | None = -44.0
    """Least grammar-vs-free-phone-loop score per speech frame (1e-4 nats) a command needs;
    None skips that second pass. Higher rejects more. See assistant.brains.phrase.brain."""
    twin_margin: float = 2.0
    """When a harmless command has a one-word twin in the grammar whose call is sensitive
    ("lock" / "unlock the front door"), the twin is taken (and so confirmed) unless it scores
    more than this below the hypothesis per frame (1e-4 nats). Higher asks more often."""


@dataclass(frozen=True)
class BrainSettings:
    """Which brain turns speech into tool calls."""

    kind: Literal["phrase", "gemma", "hybrid"] = "phrase"
    """phrase (no download), gemma (needs model files), hybrid (phrase first, then Gemma)."""
    phrase: PhraseSettings = PhraseSettings()
    """Phrase-brain settings."""
    gemma: GemmaSettings = GemmaSettings()
    """Gemma-brain settings."""


@dataclass(frozen=True)
class TlsSettings:
    """TLS towards the MQTT broker."""

    enabled: bool = False
    """Use TLS."""
    ca_file: Path | None = None
    """CA certificate bundle; None uses the system store."""
    cert_file: Path | None = None
    """Client certificate (PEM)."""
    key_file: Path | None = None
    """Client private key (PEM)."""
    insecure: bool = False
    """Skip certificate checks. Never on by default; for test brokers only."""


@dataclass(frozen=True)
class MqttSettings:
    """The MQTT broker (Home Assistant's Mosquitto)."""

    host: str | None = None
    """Broker host; None runs without a broker (commands are shown, not sent)."""
    port: int = 1883
    """Broker port."""
    username: str | None = None
    """User name."""
    password: Secret | None = None
    """Password: inline, {env: NAME}, {file: PATH}, or $ASSISTANT_MQTT_PASSWORD."""
    tls: TlsSettings = TlsSettings()
    """TLS settings."""
    client_id: str | None = None
    """Client id; default assistant-<site>."""
    protocol: Literal["auto", "5", "3.1.1"] = "auto"
    """MQTT protocol; auto tries 5 and falls back to 3.1.1."""
    keepalive_s: int = 30
    """Keepalive interval."""
    discovery_prefix: str = "homeassistant"
    """Home Assistant discovery prefix."""
    base_topic: str = "assistant"
    """Prefix of the assistant's own topics: <base>/<site>/..."""
    queue_size: int = 100
    """Publishes kept while disconnected."""
    freshness_s: float = 10.0
    """Home-control commands older than this are dropped, never fired late."""
    hermes: bool = False
    """Also publish Hermes-style hermes/intent/<name> messages."""
    max_payload_bytes: int = 65536
    """Larger incoming payloads are ignored."""


@dataclass(frozen=True)
class HomeSettings:
    """The home inventory beyond what discovery provides."""

    entities: tuple[Mapping[str, Any], ...] = ()
    """Entities declared by hand (same keys as an MQTT discovery config plus `component`)."""
    sensitive_extra: tuple[str, ...] = ()
    """Extra entity ids whose commands always need confirmation."""


@dataclass(frozen=True)
class TtsSettings:
    """Where replies are spoken."""

    kind: Literal["espeak", "piper", "mqtt", "file", "none"] = "espeak"
    """espeak (default), piper, mqtt (text on a topic), file (a WAV per reply), none."""
    voice: str | None = None
    """espeak-ng voice name (e.g. en-us) or piper voice .onnx path."""
    speed: int = 175
    """espeak-ng words per minute."""
    output_dir: Path | None = None
    """For kind=file: folder for reply WAVs (default <state_dir>/replies)."""
    topic: str | None = None
    """For kind=mqtt: topic for reply text (default <base>/<site>/tts)."""


@dataclass(frozen=True)
class RouterSettings:
    """The tool router."""

    confirmation_window_s: float = 10.0
    """A sensitive action waits this long for an explicit yes."""
    confirmation_pin: Secret | None = None
    """If set, sensitive actions need this spoken PIN instead of yes."""
    call_timeout_s: float = 5.0
    """Default per-call handler timeout."""


@dataclass(frozen=True)
class SkillsSettings:
    """Where skills come from."""

    paths: tuple[Path, ...] = ()
    """Extra skill folders beside the shipped skills/."""
    builtin: bool = True
    """Load the shipped skills (clock, timers, assistant control)."""


def _default_state_dir() -> Path:
    env = os.environ.get("STATE_DIRECTORY")  # systemd's StateDirectory=
    if env:
        return Path(env.split(":")[0])
    return Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "assistant"


@dataclass(frozen=True)
class Settings:
    """All settings of one assistant."""

    site: str = "default"
    """Name of this satellite (room); used in topics and for same-site confirmation."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Log verbosity."""
    state_dir: Path = field(default_factory=_default_state_dir)
    """Where timers and other state persist."""
    audio: AudioSettings = AudioSettings()
    """Audio in and out."""
    vad: VadSettings = VadSettings()
    """Voice activity detection and endpointing."""
    wake: WakeSettings = WakeSettings()
    """Wake words."""
    brain: BrainSettings = BrainSettings()
    """Speech to tool calls."""
    router: RouterSettings = RouterSettings()
    """Tool router."""
    skills: SkillsSettings = SkillsSettings()
    """Skills."""
    mqtt: MqttSettings = MqttSettings()
    """MQTT broker."""
    home: HomeSettings = HomeSettings()
    """Home inventory extras."""
    tts: TtsSettings = TtsSettings()
    """Speech output."""


# --------------------------------------------------------------------------- loading

SEARCH_PATHS = (Path("/etc/assistant/config.yaml"), Path("~/.config/assistant/config.yaml"))


def find_config(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The settings file to use, by the documented search order, or None for defaults."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("ASSISTANT_CONFIG")
    if env:
        return Path(env)
    for candidate in SEARCH_PATHS:
        path = candidate.expanduser()
        if path.is_file():
            return path
    return None


def load_settings(path: str | os.PathLike[str] | None = None, *, search: bool = True) -> Settings:
    """Load and validate settings; raises ConfigError listing every problem."""
    file = find_config(path) if search or path else None
    if file is None:
        return parse_settings("{}", source="<defaults>")
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{file}: no such file"]) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError([f"{file}: cannot read: {err}"]) from None
    return parse_settings(text, source=str(file))


def parse_settings(text: str, *, source: str = "<string>", env: Mapping[str, str] | None = None) -> Settings:
    """Parse YAML text into Settings; raises ConfigError listing every problem."""
    environ = os.environ if env is None else env
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise ConfigError([f"{where}: not valid YAML: {getattr(err, 'problem', err)}"]) from None
    builder = _Builder(source, environ)
    if node is None or (isinstance(node, yaml.ScalarNode) and node.value == ""):
        node = yaml.MappingNode("tag:yaml.org,2002:map", [])
    result = builder.build(Settings, node, ())
    if builder.problems:
        raise ConfigError(sorted(builder.problems, key=_line_of))
    assert isinstance(result, Settings)  # noqa: S101 - internal invariant, not outside data
    return result


def _line_of(problem: str) -> int:
    head = problem.split(": ", 1)[0]
    tail = head.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class _Invalid:
    """Marker for a value that failed validation (problem already recorded)."""


_INVALID = _Invalid()


class _Builder:
    def __init__(self, source: str, environ: Mapping[str, str]) -> None:
        self.source = source
        self.environ = environ
        self.problems: list[str] = []

    def problem(self, node: yaml.Node | None, path: tuple[str, ...], message: str) -> _Invalid:
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        key = ".".join(path) or "<top>"
        self.problems.append(f"{self.source}{line}: {key}: {message}")
        return _INVALID

    def build(self, tp: Any, node: yaml.Node | None, path: tuple[str, ...]) -> Any:
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            return self._dataclass(tp, node, path)
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in (typing.Union, types.UnionType):
            return self._union(args, node, path)
        if origin is Literal:
            value = self._scalar(node)
            if node is not None and isinstance(node, yaml.ScalarNode):
                for allowed in args:
                    if str(allowed) == str(value):
                        return allowed
            return self.problem(node, path, f"must be one of {', '.join(map(str, args))}, got {value!r}")
        if origin is tuple:
            if not isinstance(node, yaml.SequenceNode):
                return self.problem(node, path, "must be a list")
            items = [self.build(args[0], item, (*path, f"[{i}]")) for i, item in enumerate(node.value)]
            return _INVALID if any(i is _INVALID for i in items) else tuple(items)
        if origin in (Mapping, dict) or tp is Any:
            return yaml.safe_load(yaml.serialize(node)) if node is not None else None
        if tp is Secret:
            return self._secret(node, path)
        if tp is bool:
            value = self._scalar(node)
            if isinstance(value, bool):
                return value
            return self.problem(node, path, f"must be true or false, got {value!r}")
        if tp is int:
            value = self._scalar(node)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            return self.problem(node, path, f"must be a whole number, got {value!r}")
        if tp is float:
            value = self._scalar(node)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
            return self.problem(node, path, f"must be a number, got {value!r}")
        if tp is str:
            value = self._scalar(node)
            if isinstance(value, (str, int, float)) and not isinstance(value, bool):
                return str(value)
            return self.problem(node, path, f"must be text, got {value!r}")
        if tp is Path:
            value = self._scalar(node)
            if isinstance(value, str) and value:
                return Path(value).expanduser()
            return self.problem(node, path, f"must be a path, got {value!r}")
        raise TypeError(f"unsupported settings type {tp!r} at {'.'.join(path)}")  # programming error

    def _scalar(self, node: yaml.Node | None) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            return "<a list or mapping>"
        return yaml.safe_load(yaml.serialize(node))

    def _union(self, args: tuple[Any, ...], node: yaml.Node | None, path: tuple[str, ...]) -> Any:
        non_none = [a for a in args if a is not type(None)]
        if type(None) in args and isinstance(node, yaml.ScalarNode) and self._scalar(node) is None:
            return None
        if len(non_none) == 1:
            return self.build(non_none[0], node, path)
        # str | int: keep ints as ints (device index), everything else as text
        value = self._scalar(node)
        if int in non_none and isinstance(value, int) and not isinstance(value, bool):
            return value
        if str in non_none and isinstance(value, str):
            return value
        names = ", ".join(a.__name__ for a in non_none)
        return self.problem(node, path, f"must be one of {names}, got {value!r}")

    def _secret(self, node: yaml.Node | None, path: tuple[str, ...]) -> Secret | _Invalid | None:
        env_name = "ASSISTANT_" + "_".join(p.upper() for p in path)
        if env_name in self.environ:
            return Secret(self.environ[env_name])
        if node is None:
            return None
        if isinstance(node, yaml.ScalarNode):
            value = self._scalar(node)
            if value is None:
                return None
            if isinstance(value, (str, int)) and not isinstance(value, bool):
                return Secret(str(value))
            return self.problem(node, path, "must be text, {env: NAME} or {file: PATH}")
        if isinstance(node, yaml.MappingNode) and len(node.value) == 1:
            key_node, value_node = node.value[0]
            kind, ref = key_node.value, self._scalar(value_node)
            if kind == "env" and isinstance(ref, str):
                if ref not in self.environ:
                    return self.problem(node, path, f"environment variable {ref} is not set")
                return Secret(self.environ[ref])
            if kind == "file" and isinstance(ref, str):
                try:
                    return Secret(Path(ref).expanduser().read_text(encoding="utf-8").strip())
                except (OSError, UnicodeDecodeError) as err:
                    reason = getattr(err, "strerror", None) or err
                    return self.problem(node, path, f"cannot read secret file {ref}: {reason}")
        return self.problem(node, path, "must be text, {env: NAME} or {file: PATH}")

    def _dataclass(self, cls: type[Any], node: yaml.Node | None, path: tuple[str, ...]) -> Any:
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if node is None:
            node = yaml.MappingNode("tag:yaml.org,2002:map", [])
        if not isinstance(node, yaml.MappingNode):
            return self.problem(node, path, "must be a mapping of keys to values")
        given: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key not in fields:
                close = difflib.get_close_matches(key, fields, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(fields)})"
                self.problem(key_node, (*path, key), f"unknown key{hint}")
                continue
            if key in given:
                self.problem(key_node, (*path, key), "given twice")
            given[key] = value_node
        kwargs: dict[str, Any] = {}
        ok = True
        for name in fields:
            tp = hints[name]
            if name in given:
                value = self.build(tp, given[name], (*path, name))
            elif tp is Secret or (typing.get_args(tp) and Secret in typing.get_args(tp)):
                value = self._secret(None, (*path, name))
                if value is None:
                    continue
            else:
                continue
            if value is _INVALID:
                ok = False
            else:
                kwargs[name] = value
        if not ok:
            return _INVALID
        try:
            obj = cls(**kwargs)
        except (TypeError, ValueError) as err:
            return self.problem(node, path, str(err))
        for name, message in _check(obj):
            self.problem(given.get(name, node), (*path, name) if name else path, message)
        return obj


def _check(obj: Any) -> list[tuple[str, str]]:
    """Cross-field and range checks that types alone cannot express."""
    problems: list[tuple[str, str]] = []
    if isinstance(obj, AudioSettings):
        if obj.block_ms not in (10, 20, 30):
            problems.append(("block_ms", f"must be 10, 20 or 30, got {obj.block_ms}"))
        if not 0.0 <= obj.volume <= 1.0:
            problems.append(("volume", f"must be between 0.0 and 1.0, got {obj.volume}"))
        if obj.sample_rate < 8000 or obj.sample_rate > 192000:
            problems.append(("sample_rate", f"must be 8000..192000, got {obj.sample_rate}"))
        if obj.source == "command" and not obj.command:
            problems.append(("command", "source is 'command' but no command is set"))
    elif isinstance(obj, VadSettings):
        if obj.aggressiveness not in (0, 1, 2, 3):
            problems.append(("aggressiveness", f"must be 0..3, got {obj.aggressiveness}"))
        if obj.frame_ms not in (10, 20, 30):
            problems.append(("frame_ms", f"must be 10, 20 or 30, got {obj.frame_ms}"))
        if not 0.0 < obj.max_utterance_s <= 30.0:
            problems.append(("max_utterance_s", f"must be in (0, 30], got {obj.max_utterance_s}"))
    elif isinstance(obj, MqttSettings):
        if not 0 < obj.port < 65536:
            problems.append(("port", f"must be 1..65535, got {obj.port}"))
        if obj.password is not None and obj.username is None:
            problems.append(("password", "password is set but username is not"))
    elif isinstance(obj, Settings) and (not obj.site or any(c in obj.site for c in "+#/ ")):
        problems.append(("site", f"must be a non-empty name without + # / or spaces, got {obj.site!r}"))
    return problems


# --------------------------------------------------------------------------- showing

def settings_to_dict(obj: Any) -> Any:
    """Settings as plain data with secrets masked, for `assistant config check`."""
    if isinstance(obj, Secret):
        return "********"
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: settings_to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple):
        return [settings_to_dict(v) for v in obj]
    if isinstance(obj, Mapping):
        return {str(k): settings_to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj
