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
import math
import os
import stat
import types
import typing
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from yaml.constructor import SafeConstructor

from assistant.errors import ConfigError
from assistant.paths import file_kind


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
    draft: Literal["none", "model", "prompt_lookup"] = "none"
    """Speculative decoding (greedy only; exact): a draft model (draft_model_dir), n-grams of the
    prompt and tool declarations (prompt_lookup), or none. Off until measured on real weights."""
    draft_model_dir: Path | None = None
    """With draft: model, a second onnx-community export sharing the tokenizer (E2B for E4B)."""
    lookahead: int = 4
    """Tokens drafted per decoder pass."""
    branches: int = 4
    """Branch verification in tool calls (greedy only; exact): where the call grammar branches
    right after a pass's pick and forced run, that pass also feeds up to this many of the
    valid continuations there as extra batch rows (the past replicated per row); the model's
    own pick keeps one row, as far as it agrees. 0 or 1 = off. Needs a decoder graph with a
    dynamic batch dimension (checked once at the first prefix; off with a warning if not)."""
    branch_tokens: int = 16
    """The most positions one branch pass feeds over all its rows (each row: the pick, its
    forced run and one continuation). On a Pi 5 (E2B, LiteRT-LM rates) a pass of n positions
    costs about max(1/7.6, n/133) s, so ~17 positions cost no more than one token."""


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
    """How far (1e-4 nats per frame of the differing word) a heard command must lead its one-word
    twins to act as heard. A sensitive twin ("unlock" for "lock the front door") that comes
    closer is taken instead, so the router asks first; an opposite twin ("on" / "off", "open" /
    "close") or a like-sounding number ("fifty" / "fifteen" / "sixty") that comes closer
    refuses the turn. Higher asks and refuses more often."""
    number_margin: float = 4.4
    """How far a heard number must lead a like-sounding one ("seventy" / "seventeen", "eighty" /
    "eighteen") to act without asking; a number that leads by more than ``twin_margin`` but no
    more than this is asked back ("Do you want me to start a timer: 70?") and runs on a yes.
    At least ``twin_margin``; equal to it never asks. Higher asks more often. See
    assistant.brains.phrase.brain (PhraseBrain._verdict)."""
    max_pause_ms: int = 600
    """Longest quiet a command may hold between its words; a longer one means the grammar strung
    two things said into one command ("next" ... noise ... heard as "what day is ... it"), and the
    turn is refused. The endpointer ends an utterance after ``vad.silence_end_ms`` of quiet, so
    keep this at least that."""
    verifier_dir: Path | None = None
    """Optional second opinion on refused turns: a faster-whisper model folder (``assistant models
    pull whisper-tiny.en``; needs the verify extra). Whisper's transcript may pick the heard command
    or one of its twins, or propose a grammar sentence the audio must then fit; it never acts
    alone. None (default) keeps the brain download-free.
    See assistant.brains.phrase.verifier."""
    verifier_min_probability: float = 0.75
    """Least Whisper word probability, on the words that tell the candidates apart, for its pick
    to act; a number short of it is asked back. Higher asks and refuses more often."""


@dataclass(frozen=True)
class RemoteSettings:
    """A bigger model on a home server behind an OpenAI-compatible /v1/chat/completions."""

    url: str | None = None
    """Base URL of the server's API (http://homeserver:8080/v1); None = no remote brain."""
    model: str = "gemma-4-26b-a4b"
    """Model name sent with each request."""
    api_key: Secret | None = None
    """Bearer token: inline, {env: NAME}, {file: PATH}, or $ASSISTANT_BRAIN_REMOTE_API_KEY."""
    ca_file: Path | None = None
    """CA bundle (PEM) that signs an https server's certificate; None uses the system store.
    Certificates and host names are always checked."""
    hear: Literal["phrase", "gemma"] = "phrase"
    """Whose words the server reads: the phrase grammar's transcript (no download, but only
    the grammar's words), or Gemma E2B/E4B's speech recognition (needs brain.gemma.model_dir;
    Gemma then also answers when the server cannot)."""
    escalate: Literal["rejected", "unknown", "everything"] = "rejected"
    """What the server gets: what the phrase brain rejects; ``unknown``: of that, only what
    Gemma E2B/E4B on the device then did not know (no tool call and a not-understood or
    "I don't know" reply; needs a local Gemma: kind hybrid, or hear gemma); or everything
    except the home commands and assistant controls (stop, volume) the grammar handles:
    those never wait for the network."""
    connect_timeout_s: float = 2.0
    """Seconds to open the TCP (and TLS) connection."""
    first_token_timeout_s: float = 8.0
    """Seconds to wait for the response's first streamed chunk, and at most between two chunks."""
    total_timeout_s: float = 30.0
    """Seconds one request may take from connect to the last chunk."""
    max_tokens: int = 256
    """Generation bound per request (sent as max_tokens)."""
    temperature: float | None = None
    """Sampling temperature sent with each request; None leaves the server's default."""
    max_rounds: int = 3
    """Requests per utterance: each tool-call round is one; the last may only speak
    (tool_choice none), so 3 allows two rounds of calls."""
    max_tool_calls: int = 4
    """Tool calls one response may carry; a response with more is refused whole."""
    max_response_bytes: int = 1 << 20
    """Bytes one response may carry; a longer one is refused whole."""
    history_turns: int = 3
    """Earlier exchanges (what was said, what was answered) sent along; 0 = none."""
    history_s: float = 300.0
    """Exchanges older than this many seconds are not sent."""


@dataclass(frozen=True)
class BrainSettings:
    """Which brain turns speech into tool calls."""

    kind: Literal["phrase", "gemma", "hybrid", "remote"] = "phrase"
    """phrase (no download), gemma (needs model files), hybrid (phrase first, then Gemma),
    remote (the device hears, a server's model thinks; see brain.remote)."""
    phrase: PhraseSettings = PhraseSettings()
    """Phrase-brain settings."""
    gemma: GemmaSettings = GemmaSettings()
    """Gemma-brain settings."""
    remote: RemoteSettings = RemoteSettings()
    """Remote-brain settings."""


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
    aliases: Mapping[str, str] = field(default_factory=dict)
    """More spoken names: alias -> entity id or name ({"big light": "light.ceiling"}). An alias
    that fits several entities is asked about, never guessed."""
    area: str | None = None
    """The area this assistant stands in ("kitchen"): commands that name no area act there, and
    one that names nothing acts on the one device it fits there (HA's satellite area)."""
    alarm_code: Secret | None = None
    """The code for alarm panels that need one (their discovery config has ``code``): inline,
    {env: NAME}, {file: PATH}, or $ASSISTANT_HOME_ALARM_CODE. Disarming always asks first."""


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


@dataclass(frozen=True)
class SatelliteSettings:
    """One wyoming-satellite this assistant serves."""

    uri: str = ""
    """Where the satellite listens: tcp://host:10700."""
    site: str = ""
    """Its site name (room): confirmations and timers stay with it."""
    area: str | None = None
    """Its area ("kitchen"): commands heard there that name no area act in it, as home.area does
    for this box's own microphone (none: such commands name an area, or the one device that fits)."""
    name: str | None = None
    """Display name in logs and status (default: the satellite's own, from its info event)."""
    reconnect_initial_s: float = 0.5
    """First wait before connecting again after the satellite dropped or refused."""
    reconnect_max_s: float = 10.0
    """Longest wait between connection attempts (the wait doubles up to this)."""
    freshness_s: float = 10.0
    """A command whose speech ended longer ago than this is dropped, never acted on late."""


@dataclass(frozen=True)
class WyomingServerSettings:
    """A Wyoming server Home Assistant's wyoming integration can add."""

    host: str = "127.0.0.1"
    """Address to listen on (0.0.0.0 for Home Assistant on another machine)."""
    port: int = 10800
    """TCP port."""
    serve: tuple[Literal["asr", "handle", "tts", "satellite"], ...] = ("asr", "handle")
    """What it offers: asr (transcripts), handle (a conversation agent), tts (the piper voice of
    ``tts.voice``: HA needs a speech engine for a pipeline that ends in speech, as a satellite's
    does), satellite (this assistant's microphone and speaker for HA's pipelines, on
    ``satellite_port``: while HA is connected and running it, a wake-word turn is HA's, and our
    brain takes it whenever HA is not there or paused)."""
    satellite_port: int = 10700
    """TCP port of the satellite endpoint (HA treats a whole endpoint as one satellite, so it
    cannot share ``port``)."""
    asr: Literal["phrase", "gemma"] = "phrase"
    """Whose ears ``asr`` lends Home Assistant: phrase (the grammar's transcript, and only of what
    it would act on: "" otherwise) or gemma (Gemma 4's own audio encoder with Google's ASR prompt:
    free text of anything said; needs ``brain.gemma.model_dir``, and shares the daemon's Gemma
    brain when it has one)."""
    site: str = "home-assistant"
    """The site the router sees for Home Assistant's requests (its confirmations stay with it)."""


@dataclass(frozen=True)
class WyomingSettings:
    """Home Assistant's voice protocol: satellites served, and a server for Home Assistant."""

    satellites: tuple[SatelliteSettings, ...] = ()
    """wyoming-satellite endpoints to connect to."""
    server: WyomingServerSettings | None = None
    """None = no Wyoming server."""


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
    wyoming: WyomingSettings = WyomingSettings()
    """Wyoming satellites and server."""


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


MAX_CONFIG_BYTES = 1 << 20
"""Largest settings file read (1 MiB); anything bigger is refused before it is read."""
MAX_SECRET_BYTES = 64 << 10
"""Largest ``{file: PATH}`` secret read (64 KiB)."""
MAX_YAML_ALIASES = 100
"""Most ``*alias`` references a settings file may use."""
MAX_YAML_ALIAS_NODES = 10_000
"""Most YAML nodes all aliases together may stand for once expanded (no billion laughs)."""
MAX_YAML_DEPTH = 64
"""Deepest nesting of lists and mappings in a settings file."""


class UnreadableFile(Exception):
    """A file that read_small_file refuses; the message says why, without the path."""


def read_small_file(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes.

    Directories, FIFOs, devices (/dev/zero) and sockets are refused from ``stat`` before
    they are opened, and the file is opened non-blocking, so nothing here waits for a
    writer or reads forever. Raises FileNotFoundError, UnreadableFile or OSError.
    """
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise UnreadableFile(f"is {file_kind(st.st_mode)}, not a regular file")
    if st.st_size > limit:
        raise UnreadableFile(f"is too large ({st.st_size} bytes; the limit is {limit})")
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)  # the path may have been swapped since the stat above
        if not stat.S_ISREG(st.st_mode):
            raise UnreadableFile(f"is {file_kind(st.st_mode)}, not a regular file")
        chunks: list[bytes] = []
        total = 0
        while total <= limit:
            chunk = os.read(fd, limit + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    finally:
        os.close(fd)
    if total > limit:
        raise UnreadableFile(f"is too large (more than {limit} bytes)")
    return b"".join(chunks)


def load_settings(path: str | os.PathLike[str] | None = None, *, search: bool = True) -> Settings:
    """Load and validate settings; raises ConfigError listing every problem."""
    file = find_config(path) if search or path else None
    if file is None:
        return parse_settings("{}", source="<defaults>")
    try:
        raw = read_small_file(file, MAX_CONFIG_BYTES)
    except FileNotFoundError:
        raise ConfigError([f"{file}: no such file"]) from None
    except UnreadableFile as err:
        raise ConfigError([f"{file}: cannot read: {err}"]) from None
    except OSError as err:
        raise ConfigError([f"{file}: cannot read: {err.strerror or err}"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise ConfigError([f"{file}:{line}: not UTF-8 text"]) from None
    return parse_settings(text, source=str(file))


_SAFE_TAGS = frozenset(tag for tag in yaml.SafeLoader.yaml_constructors if tag is not None) | {
    "tag:yaml.org,2002:merge",
    "tag:yaml.org,2002:value",
}


class _Refused(yaml.YAMLError):
    """YAML that parses but is refused (aliases, depth, tags); carries where."""

    def __init__(self, message: str, mark: Any) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


def _show_tag(tag: str) -> str:
    return "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.org,2002:") else tag


class _GuardedLoader(yaml.SafeLoader):
    """SafeLoader composing with bounds: few aliases, little alias expansion, shallow, plain tags."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0
        self._alias_nodes = 0
        self._depth = 0
        self._sizes: dict[int, int] = {}  # id(node) -> node count once aliases are expanded

    def _mark(self) -> Any:
        event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
        return event.start_mark

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            mark = self._mark()
            self._aliases += 1
            if self._aliases > MAX_YAML_ALIASES:
                raise _Refused(f"more than {MAX_YAML_ALIASES} aliases (*name); refused", mark)
            target = super().compose_node(parent, index)
            size = self._sizes.get(id(target))
            if size is None:
                raise _Refused("an alias refers to the list or mapping it is inside; refused", mark)
            self._alias_nodes += size
            if self._alias_nodes > MAX_YAML_ALIAS_NODES:
                raise _Refused(f"aliases expand to more than {MAX_YAML_ALIAS_NODES} values; refused", mark)
            return target
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise _Refused(f"nested more than {MAX_YAML_DEPTH} levels deep; refused", self._mark())
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node is None:
            return None
        if node.tag not in _SAFE_TAGS:
            raise _Refused(
                f"unsupported tag {_show_tag(node.tag)}; only plain YAML values are read", node.start_mark
            )
        size = 1
        if isinstance(node, yaml.SequenceNode):
            size += sum(self._sizes.get(id(child), 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            size += sum(self._sizes.get(id(k), 1) + self._sizes.get(id(v), 1) for k, v in node.value)
        self._sizes[id(node)] = size
        return node


def _compose(text: str, source: str) -> yaml.Node | None:
    loader = _GuardedLoader(text)
    try:
        return loader.get_single_node()
    except _Refused as err:
        where = f"{source}:{err.mark.line + 1}" if err.mark is not None else source
        raise ConfigError([f"{where}: {err.message}"]) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise ConfigError([f"{where}: not valid YAML: {getattr(err, 'problem', None) or err}"]) from None
    except RecursionError:
        raise ConfigError([f"{source}: nested too deeply; refused"]) from None
    finally:
        loader.dispose()


def parse_settings(text: str, *, source: str = "<string>", env: Mapping[str, str] | None = None) -> Settings:
    """Parse YAML text into Settings; raises ConfigError listing every problem."""
    environ = os.environ if env is None else env
    node = _compose(text, source)
    builder = _Builder(source, environ)
    if node is None or (isinstance(node, yaml.ScalarNode) and node.value == ""):
        node = yaml.MappingNode("tag:yaml.org,2002:map", [])
    try:
        result = builder.build(Settings, node, ())
    except RecursionError:  # the loader bounds depth; this is a second fence
        raise ConfigError([f"{source}: nested too deeply; refused"]) from None
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


class _Unconstructable(Exception):
    """A node whose value YAML itself cannot build (``!!int abc``, bad ``!!binary``)."""


def _construct(node: yaml.Node) -> Any:
    """The Python value of a composed node (safe types only; the loader vetted the tags)."""
    try:
        return SafeConstructor().construct_document(node)
    except Exception as err:  # PyYAML's constructors fail in many ways on odd explicit tags
        problem = getattr(err, "problem", None) or str(err) or type(err).__name__
        if "integer string conversion" in problem:
            problem = "a number with too many digits"
        raise _Unconstructable(f"cannot read this value: {problem}") from None


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
        try:
            return self._build(tp, node, path)
        except _Unconstructable as err:
            return self.problem(node, path, str(err))

    def _build(self, tp: Any, node: yaml.Node | None, path: tuple[str, ...]) -> Any:
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
        if origin in (Mapping, dict):
            if not isinstance(node, yaml.MappingNode):
                return self.problem(node, path, "must be a mapping of keys to values")
            return _construct(node)
        if tp is Any:
            return _construct(node) if node is not None else None
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
                try:
                    number = float(value)
                except OverflowError:
                    number = math.inf
                if not math.isfinite(number):
                    return self.problem(node, path, f"must be a finite number, got {value!r}")
                return number
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
        return _construct(node)

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
                    raw = read_small_file(Path(ref).expanduser(), MAX_SECRET_BYTES)
                    return Secret(raw.decode("utf-8").strip())
                except UnicodeDecodeError:
                    return self.problem(node, path, f"cannot read secret file {ref}: not UTF-8 text")
                except UnreadableFile as err:
                    return self.problem(node, path, f"cannot read secret file {ref}: {err}")
                except OSError as err:
                    reason = err.strerror or err
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
                continue
            why = _range_problem(cls, name, value)
            if why is not None:
                self.problem(given.get(name, node), (*path, name), why)
                ok = False
                continue
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


@dataclass(frozen=True, slots=True)
class _Range:
    """An allowed interval of a numeric setting; ``open_*`` leave that end out."""

    low: float
    high: float
    open_low: bool = False
    open_high: bool = False

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.open_low else value >= self.low
        below = value < self.high if self.open_high else value <= self.high
        return above and below

    def describe(self, whole: bool) -> str:
        low, high = _number(self.low), _number(self.high)
        if whole and not (self.open_low or self.open_high):
            return f"{low}..{high}"
        return f"{'(' if self.open_low else '['}{low}, {high}{')' if self.open_high else ']'}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


_PROBABILITY = _Range(0.0, 1.0, open_low=True)
_RANGES: dict[type[Any], dict[str, _Range]] = {
    AudioSettings: {
        "sample_rate": _Range(8000, 192000),
        "channels": _Range(1, 64),
        "queue_blocks": _Range(1, 100_000),
        "command_rate": _Range(8000, 192000),
        "command_channels": _Range(1, 64),
        "volume": _Range(0.0, 1.0),
        "retry_max_s": _Range(0.0, 3600.0, open_low=True),
    },
    VadSettings: {
        "aggressiveness": _Range(0, 3),
        "silero_threshold": _PROBABILITY,
        "speech_start_ms": _Range(0, 5000),
        "silence_end_ms": _Range(10, 10_000),
        "pre_roll_ms": _Range(0, 5000),
        "min_utterance_ms": _Range(0, 30_000),
        "max_utterance_s": _Range(0.0, 30.0, open_low=True),
        "no_speech_timeout_s": _Range(0.0, 600.0, open_low=True),
        "min_speech_dbfs": _Range(-200.0, 0.0),
    },
    WakeWordSettings: {
        "threshold": _PROBABILITY,
        "refractory_s": _Range(0.0, 600.0),
    },
    WakeSettings: {"follow_up_s": _Range(0.0, 600.0)},
    GemmaSettings: {
        "intra_op_threads": _Range(0, 256),
        "max_new_tokens": _Range(1, 8192),
        "max_rounds": _Range(1, 20),
        "temperature": _Range(0.0, 5.0),
        "top_k": _Range(1, 1_000_000),
        "top_p": _PROBABILITY,
        "lookahead": _Range(1, 64),
        "branches": _Range(0, 64),
        "branch_tokens": _Range(2, 1024),
    },
    PhraseSettings: {
        "rejection_threshold": _Range(0.0, 10_000.0, open_low=True),
        "confidence_threshold": _Range(-10_000.0, 10_000.0),
        "twin_margin": _Range(0.0, 10_000.0),
        "number_margin": _Range(0.0, 10_000.0),
        "max_pause_ms": _Range(100, 60_000),
        "verifier_min_probability": _Range(0.0, 1.0),
    },
    MqttSettings: {
        "port": _Range(1, 65535),
        "keepalive_s": _Range(1, 65535),
        "queue_size": _Range(1, 100_000),
        "freshness_s": _Range(0.0, 3600.0, open_low=True),
        "max_payload_bytes": _Range(1, 16 << 20),
    },
    TtsSettings: {"speed": _Range(80, 500)},
    WyomingServerSettings: {"port": _Range(1, 65535), "satellite_port": _Range(1, 65535)},
    RemoteSettings: {
        "connect_timeout_s": _Range(0.0, 120.0, open_low=True),
        "first_token_timeout_s": _Range(0.0, 600.0, open_low=True),
        "total_timeout_s": _Range(0.0, 3600.0, open_low=True),
        "max_tokens": _Range(1, 32_768),
        "temperature": _Range(0.0, 5.0),
        "max_rounds": _Range(2, 10),
        "max_tool_calls": _Range(1, 32),
        "max_response_bytes": _Range(1024, 64 << 20),
        "history_turns": _Range(0, 50),
        "history_s": _Range(0.0, 86_400.0),
    },
    SatelliteSettings: {
        "reconnect_initial_s": _Range(0.0, 600.0, open_low=True),
        "reconnect_max_s": _Range(0.0, 3600.0, open_low=True),
        "freshness_s": _Range(0.0, 3600.0, open_low=True),
    },
    RouterSettings: {
        "confirmation_window_s": _Range(0.0, 3600.0, open_low=True),
        "call_timeout_s": _Range(0.0, 3600.0, open_low=True),
    },
}
"""Allowed values of every numeric setting (None, where a field allows it, is always fine)."""

_TOPIC_FIELDS: dict[type[Any], tuple[str, ...]] = {
    MqttSettings: ("base_topic", "discovery_prefix"),
    TtsSettings: ("topic",),
}


def _range_problem(cls: type[Any], name: str, value: Any) -> str | None:
    """Why a numeric setting is out of its range (see _RANGES), or None."""
    allowed = _RANGES.get(cls, {}).get(name)
    if allowed is None or value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if value in allowed:
        return None
    return f"must be in {allowed.describe(isinstance(value, int))}, got {value}"


def _topic_problem(topic: str) -> str | None:
    """Why ``topic`` cannot be a topic (or a prefix of topics) the assistant publishes to."""
    if not topic:
        return "must not be empty"
    bad = sorted({c for c in topic if c in "+#" or ord(c) < 32 or ord(c) == 127})
    if bad:
        shown = " ".join(repr(c)[1:-1] for c in bad)
        return f"must not contain MQTT wildcards or control characters (found {shown}), got {topic!r}"
    if topic.startswith("/") or topic.endswith("/"):
        return f"must not start or end with '/', got {topic!r}"
    if len(topic.encode("utf-8")) > 1024:
        return "must be at most 1024 bytes long"
    return None


def _site_problem(site: str) -> str | None:
    if (
        not site
        or len(site) > 64
        or any(c in "+#/" or c.isspace() or not c.isprintable() for c in site)
    ):
        return (
            "must be a non-empty name of at most 64 characters without + # / spaces or "
            f"control characters, got {site!r}"
        )
    return None


def _check(obj: Any) -> list[tuple[str, str]]:
    """Cross-field and text checks that types and _RANGES alone cannot express."""
    problems: list[tuple[str, str]] = []
    for name in _TOPIC_FIELDS.get(type(obj), ()):
        value = getattr(obj, name)
        if value is not None and (why := _topic_problem(value)) is not None:
            problems.append((name, why))
    check = _CHECKS.get(type(obj))
    if check is not None:
        problems.extend(check(obj))
    return problems


def _audio_problems(obj: AudioSettings) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if obj.block_ms not in (10, 20, 30):
        problems.append(("block_ms", f"must be 10, 20 or 30, got {obj.block_ms}"))
    if obj.source == "command" and not obj.command:
        problems.append(("command", "source is 'command' but no command is set"))
    for name in ("device", "output_device"):
        value = getattr(obj, name)
        if isinstance(value, int) and value < 0:
            problems.append((name, f"a device index must be 0 or more, got {value}"))
    return problems


def _vad_problems(obj: VadSettings) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if obj.frame_ms not in (10, 20, 30):
        problems.append(("frame_ms", f"must be 10, 20 or 30, got {obj.frame_ms}"))
    if obj.min_utterance_ms > obj.max_utterance_s * 1000:
        problems.append((
            "min_utterance_ms",
            f"must not exceed max_utterance_s ({obj.max_utterance_s:g} s), got {obj.min_utterance_ms}",
        ))
    return problems


def _wake_problems(obj: WakeSettings) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if obj.enabled and not obj.words:
        problems.append(("words", "wake is enabled but no wake words are listed"))
    if any(not word.strip() for word in obj.stop_words):
        problems.append(("stop_words", "must not contain empty words"))
    return problems


def _wake_word_problems(obj: WakeWordSettings) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if not obj.model.strip():
        problems.append(("model", "must name a wake word model"))
    return problems


def _mqtt_problems(obj: MqttSettings) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if obj.password is not None and obj.username is None:
        problems.append(("password", "password is set but username is not"))
    if obj.client_id is not None and (
        not obj.client_id or any(not c.isprintable() for c in obj.client_id)
    ):
        problems.append(("client_id", f"must be non-empty printable text, got {obj.client_id!r}"))
    return problems


def _home_problems(obj: HomeSettings) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    problems.extend(_entity_topic_problems(obj.entities))
    for alias, target in obj.aliases.items():
        if not isinstance(alias, str) or not alias.strip():
            problems.append(("aliases", f"an alias must be non-empty text, got {alias!r}"))
        elif not isinstance(target, str) or not target.strip():
            problems.append(("aliases", f"{alias!r} must name an entity id or name, got {target!r}"))
    if obj.area is not None and not obj.area.strip():
        problems.append(("area", "must name an area, or be left out"))
    return problems


def _gemma_problems(obj: GemmaSettings) -> list[tuple[str, str]]:
    if obj.draft == "model" and obj.draft_model_dir is None:
        return [("draft_model_dir", "draft is 'model' but no draft_model_dir is set")]
    return []


def _brain_problems(obj: BrainSettings) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if obj.kind == "remote" and obj.remote.url is None:
        problems.append(("kind", "is 'remote' but brain.remote.url is not set"))
    if obj.kind in ("remote", "hybrid") and obj.remote.hear == "gemma" and obj.gemma.model_dir is None:
        problems.append(("remote", "hear is 'gemma' but brain.gemma.model_dir is not set"))
    if obj.kind == "remote" and obj.remote.escalate == "unknown" and obj.remote.hear != "gemma":
        problems.append(("remote", "escalate is 'unknown' but no local Gemma is asked first "
                                   "(use kind: hybrid, or hear: gemma)"))
    return problems


def _wyoming_problems(obj: WyomingSettings) -> list[tuple[str, str]]:
    return _twice(obj.satellites)


def _wyoming_server_problems(obj: WyomingServerSettings) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if (why := _site_problem(obj.site)) is not None:
        problems.append(("site", why))
    if "satellite" in obj.serve and obj.satellite_port == obj.port:
        problems.append(("satellite_port", f"must differ from port ({obj.port}): HA takes an endpoint "
                                           "that offers a satellite for a satellite only"))
    return problems


def _settings_problems(obj: Settings) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if (why := _site_problem(obj.site)) is not None:
        problems.append(("site", why))
    if any(s.site == obj.site for s in obj.wyoming.satellites):
        problems.append(("site", f"{obj.site!r} is also a satellite's site: each site is one room"))
    if obj.brain.phrase.number_margin < obj.brain.phrase.twin_margin:
        problems.append(("brain", f"phrase.number_margin ({obj.brain.phrase.number_margin}) is below "
                                  f"phrase.twin_margin ({obj.brain.phrase.twin_margin}): a number close to "
                                  "its twin is refused below twin_margin and asked back up to number_margin"))
    if obj.brain.phrase.max_pause_ms < obj.vad.silence_end_ms:
        problems.append(("brain", f"phrase.max_pause_ms ({obj.brain.phrase.max_pause_ms}) is shorter "
                                  f"than vad.silence_end_ms ({obj.vad.silence_end_ms}): a pause the "
                                  "endpointer lets through would refuse the command"))
    server = obj.wyoming.server
    if (server is not None and server.asr == "gemma" and "asr" in server.serve
            and obj.brain.gemma.model_dir is None):
        problems.append(("wyoming", "server.asr is 'gemma' but brain.gemma.model_dir is not set: "
                                    "download a model with `assistant models pull e2b` and set it, "
                                    "or use asr: phrase"))
    return problems


def _twice(satellites: tuple[SatelliteSettings, ...]) -> list[tuple[str, str]]:
    """Two satellites with one site or one uri."""
    problems: list[tuple[str, str]] = []
    sites = [s.site for s in satellites]
    uris = [s.uri for s in satellites]
    for i, satellite in enumerate(satellites):
        if satellite.site and sites.index(satellite.site) != i:
            problems.append(("satellites", f"[{i}].site {satellite.site!r} is used twice"))
        if satellite.uri and uris.index(satellite.uri) != i:
            problems.append(("satellites", f"[{i}].uri {satellite.uri!r} is used twice"))
    return problems


def _satellite_problems(obj: SatelliteSettings) -> list[tuple[str, str]]:
    """A satellite's uri is tcp://host:port; its site a valid site name."""
    problems: list[tuple[str, str]] = []
    if (why := satellite_uri_problem(obj.uri)) is not None:
        problems.append(("uri", why))
    if (why := _site_problem(obj.site)) is not None:
        problems.append(("site", why))
    if obj.reconnect_max_s < obj.reconnect_initial_s:
        problems.append(("reconnect_max_s",
                         f"must be at least reconnect_initial_s ({obj.reconnect_initial_s:g})"))
    return problems


def satellite_uri_problem(uri: str) -> str | None:
    """Why ``uri`` is not tcp://host:port (wyoming-satellite's --uri), or None."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as err:
        return f"must be tcp://host:port, got {uri!r} ({err})"
    if parts.scheme != "tcp" or not parts.hostname or port is None or parts.path not in ("", "/"):
        return f"must be tcp://host:port (as wyoming-satellite --uri), got {uri!r}"
    return None


def _remote_problems(obj: RemoteSettings) -> list[tuple[str, str]]:
    """The server URL is http(s) with a host; the timeouts nest."""
    problems: list[tuple[str, str]] = []
    if obj.url is not None:
        parts = urllib.parse.urlsplit(obj.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append(("url", f"must be an http:// or https:// URL with a host, got {obj.url!r}"))
        elif parts.query or parts.fragment or parts.username or parts.password:
            problems.append(("url", "must not carry a query, a fragment or credentials (use api_key)"))
        elif obj.ca_file is not None and parts.scheme != "https":
            problems.append(("ca_file", "is set but url is not https"))
    if obj.first_token_timeout_s > obj.total_timeout_s:
        problems.append(("first_token_timeout_s", "must not exceed total_timeout_s"))
    if not obj.model.strip():
        problems.append(("model", "must name the served model"))
    return problems


def _entity_topic_problems(entities: tuple[Mapping[str, Any], ...]) -> list[tuple[str, str]]:
    """Topics of hand-declared entities: never control characters; no wildcards where published."""
    problems: list[tuple[str, str]] = []
    for i, entity in enumerate(entities):
        for key, value in entity.items():
            if not (isinstance(key, str) and key.endswith("topic") and isinstance(value, str)):
                continue
            if key.endswith("command_topic"):
                why = _topic_problem(value)
            elif not value or any(ord(c) < 32 or ord(c) == 127 for c in value):
                # subscriptions (state_topic ...) may use + and #, never control characters
                why = f"must be non-empty and without control characters, got {value!r}"
            else:
                why = None
            if why is None:
                continue
            problems.append(("entities", f"[{i}].{key} {why}"))
    return problems


_CHECKS: dict[type[Any], Callable[[Any], list[tuple[str, str]]]] = {
    AudioSettings: _audio_problems,
    VadSettings: _vad_problems,
    WakeSettings: _wake_problems,
    WakeWordSettings: _wake_word_problems,
    MqttSettings: _mqtt_problems,
    HomeSettings: _home_problems,
    GemmaSettings: _gemma_problems,
    RemoteSettings: _remote_problems,
    BrainSettings: _brain_problems,
    SatelliteSettings: _satellite_problems,
    WyomingSettings: _wyoming_problems,
    WyomingServerSettings: _wyoming_server_problems,
    Settings: _settings_problems,
}
"""Per settings class, its cross-field checks (run after the type and range checks)."""


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
