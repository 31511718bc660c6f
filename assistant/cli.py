"""The `assistant` command: run | process | say | devices | config check | models pull/check."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from assistant import __version__
from assistant.config import Settings, load_settings, settings_to_dict
from assistant.errors import AssistantError, ConfigError
from assistant.paths import shown_name
from assistant.tts.kinds import TTS_KINDS

MODEL_SIZES = ("e2b", "e4b")
"""What `models pull` fetches (assistant.brains.gemma.pull.REPOS; a test keeps them equal)."""
VERIFIER_MODELS = ("whisper-tiny.en",)
"""The phrase verifier's models (assistant.brains.phrase.verifier.WHISPER_REPOS; a test keeps them equal)."""
MODEL_VARIANTS = ("fp16", "fp32", "q4", "q4f16", "quantized")
"""Precisions of the export (assistant.brains.gemma.files.VARIANT_SUFFIX; a test keeps them equal).
Written out so that `--help` does not import the model code."""

_LOGGER = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2

SAMPLES_DIR = Path(__file__).resolve().parent / "data" / "samples"


_VERBOSE_PREFIX = "verbose_"


def _global_options(parser: argparse.ArgumentParser, level: str, *, top: bool = False) -> None:
    """The options every command takes, before or after its name.

    Below the top, defaults are SUPPRESS so that an option given earlier is not reset by
    a subcommand that does not repeat it; -v counts are kept per level and summed.
    """
    parser.add_argument(
        "-c", "--config", metavar="FILE", help="settings file (YAML)",
        default=None if top else argparse.SUPPRESS,
    )
    parser.add_argument(
        "-v", "--verbose", action="count", dest=_VERBOSE_PREFIX + level, help="more log output (-vv: debug)",
        default=0 if top else argparse.SUPPRESS,
    )


class _SubParsers:
    """add_parser that also adds the global options to each new subparser."""

    def __init__(self, action: Any, prefix: str) -> None:
        self._action = action
        self._prefix = prefix

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = self._action.add_parser(name, **kwargs)
        _global_options(parser, f"{self._prefix}{name}")
        return parser


def _verbosity(args: argparse.Namespace) -> int:
    return sum(v for k, v in vars(args).items() if k.startswith(_VERBOSE_PREFIX) and isinstance(v, int))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="assistant",
        description="Offline voice assistant: wake word -> speech -> tool calls -> Home Assistant over MQTT.",
        epilog="Settings: --config, $ASSISTANT_CONFIG, /etc/assistant/config.yaml, "
        "~/.config/assistant/config.yaml, else built-in defaults. See `assistant config check`. "
        "-c/--config and -v may come before or after the command.",
    )
    parser.add_argument("--version", action="version", version=f"assistant {__version__}")
    _global_options(parser, "top", top=True)
    sub = _SubParsers(parser.add_subparsers(dest="command", metavar="COMMAND"), "")

    sub.add_parser(
        "run",
        help="run the daemon: listen for the wake word, act, reply",
        description="Run the assistant as a long-lived service (systemd Type=notify aware). "
        "SIGTERM/SIGINT stop it, SIGHUP reloads the settings, SIGUSR1 starts listening.",
    )

    proc = sub.add_parser(
        "process",
        help="run recordings through the pipeline and print what it found",
        description="Run WAV recordings through the front end (VAD, endpointing) and the configured "
        "brain, router and TTS sink; print one line per utterance. With no files, the bundled "
        "sample recordings are used. With no MQTT broker configured, home commands are shown, not sent.",
    )
    proc.add_argument("files", nargs="*", metavar="WAV", help="WAV files (any rate, channels, 8-32 bit PCM)")
    proc.add_argument("--json", action="store_true", help="one JSON object per line")
    proc.add_argument(
        "--frontend-only", action="store_true", help="only find utterances (no brain, router, TTS)"
    )
    proc.add_argument(
        "--tts",
        choices=TTS_KINDS,
        default=None,
        help="override tts.kind for this run (e.g. none: print replies only)",
    )

    say = sub.add_parser("say", help="speak TEXT through the configured TTS sink")
    say.add_argument("text", help="what to say")

    sub.add_parser("devices", help="list audio devices (use the index or a name part as audio.device)")

    home = sub.add_parser(
        "home",
        help="show what the assistant learned from Home Assistant discovery, and what it refused",
        description="Connect to the configured MQTT broker, wait for the retained discovery configs "
        "and states (bounded by --wait), then print every entity (spoken name, area, domain, "
        "capabilities, state) and every refused payload with its topic and reason. Without "
        "mqtt.host, the entities of home.entities are shown.",
    )
    home.add_argument("--json", action="store_true", help="print JSON")
    home.add_argument("--wait", type=float, default=10.0, metavar="S", help="longest wait for the broker (s)")

    cfg = sub.add_parser("config", help="settings tools")
    cfg_sub = _SubParsers(cfg.add_subparsers(dest="config_command", metavar="SUBCOMMAND"), "config_")
    check = cfg_sub.add_parser(
        "check", help="validate a settings file and print the effective settings (secrets masked)"
    )
    check.add_argument("file", nargs="?", help="settings file (default: the search order)")

    models = sub.add_parser("models", help="model files: pull (explicit download) and check (Gemma)")
    models_sub = _SubParsers(models.add_subparsers(dest="models_command", metavar="SUBCOMMAND"), "models_")
    pull = models_sub.add_parser(
        "pull",
        help="download a Gemma 4 ONNX export or the verifier's Whisper model (the only command that "
             "downloads anything)",
        description="Download only the files the chosen variants need, resumable and checked.",
    )
    pull.add_argument("model", choices=MODEL_SIZES + VERIFIER_MODELS,
                      help="Gemma size, or the phrase brain's optional verifier (whisper-tiny.en)")
    pull.add_argument("--variant", default="q4", choices=MODEL_VARIANTS,
                      help="decoder/embedding precision (default q4)")
    pull.add_argument("--audio-variant", default="fp32", choices=MODEL_VARIANTS,
                      help="audio-encoder precision (default fp32)")
    pull.add_argument("--dir", type=Path, default=None, help="destination folder")
    mcheck = models_sub.add_parser(
        "check", help="open every graph and compare it with what the runtime expects"
    )
    mcheck.add_argument("dir", type=Path, help="model folder")
    mcheck.add_argument("--variant", default=None, choices=MODEL_VARIANTS,
                        help="decoder variant (default: from settings)")
    mcheck.add_argument(
        "--audio-variant", default=None, choices=MODEL_VARIANTS,
        help="audio-encoder variant (default: from settings)",
    )
    return parser


def _setup_logging(verbose: int, settings: Settings | None = None) -> None:
    level = logging.WARNING
    if settings is not None:
        level = getattr(logging, settings.log_level)
    if verbose == 1:
        level = min(level, logging.INFO)
    elif verbose >= 2:
        level = logging.DEBUG
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True
    )


def _print_config_error(err: ConfigError) -> None:
    print(f"assistant: the settings are invalid ({len(err.problems)} problem(s)):", file=sys.stderr)
    for problem in err.problems:
        print(f"  {shown_name(problem)}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `assistant` console script; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_CONFIG
    if args.command == "run":
        # Before the settings are read or anything is built: a signal during start-up
        # must find the daemon's handlers, not the default action (terminate).
        from assistant.lifecycle import process_relay  # noqa: PLC0415 - only the daemon needs it

        process_relay()
    verbose = _verbosity(args)
    _setup_logging(verbose)
    try:
        if args.command == "config":
            if args.config_command != "check":
                parser.parse_args(["config", "--help"])
            return _config_check(args.file or args.config)
        if args.command == "models" and args.models_command is None:
            parser.parse_args(["models", "--help"])
        settings = load_settings(args.config)
        # `process` prints results on stdout; its logs stay quiet unless asked for with -v.
        _setup_logging(verbose, None if args.command == "process" else settings)
        return _dispatch(args, settings)
    except ConfigError as err:
        _print_config_error(err)
        return EXIT_CONFIG
    except AssistantError as err:
        print(f"assistant: {shown_name(err.message)} [{err.code}]", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    from assistant import commands  # noqa: PLC0415 - keeps `--help` and config check fast

    if args.command == "process":
        files = [Path(f) for f in args.files] or sorted(SAMPLES_DIR.glob("*.wav"))
        return commands.process(
            settings, files, as_json=args.json, frontend_only=args.frontend_only, tts_kind=args.tts
        )
    if args.command == "devices":
        return commands.devices()
    if args.command == "home":
        from assistant.home import report  # noqa: PLC0415

        return report.main(settings, as_json=args.json, wait_s=args.wait)
    if args.command == "say":
        return commands.say(settings, args.text)
    if args.command == "run":
        return commands.run(settings, config_path=args.config)
    if args.command == "models":
        if args.models_command == "pull":
            return commands.models_pull(settings, args.model, args.variant, args.audio_variant, args.dir)
        return commands.models_check(settings, args.dir, args.variant, args.audio_variant)
    raise AssertionError(f"unhandled command {args.command}")  # argparse restricts the choices


def _config_check(path: str | None) -> int:
    settings = load_settings(path)
    from assistant.config import find_config  # noqa: PLC0415

    source = find_config(path)
    print(f"# settings from {shown_name(source) if source else 'built-in defaults'}: OK")
    print(json.dumps(settings_to_dict(settings), indent=2))
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
