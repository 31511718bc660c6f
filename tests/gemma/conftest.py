"""Fixtures: tiny synthetic Gemma 4 model sets (generated once per session) and a real router."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from gemma_helpers import CALL, CONTEXT, E2B_TEMPLATE, MALFORMED, REPLY, RESPONSE, Lights, load_generator

from assistant.tools.registry import ToolRegistry
from assistant.tools.router import Router
from assistant.types import Utterance

TEMPLATE = E2B_TEMPLATE.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def tiny() -> ModuleType:
    """The generator script as a module."""
    return load_generator()


@pytest.fixture(scope="session")
def general_dir(tiny: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random-weight tiny model (fp32 + fp16 decoders, fp32 audio encoder)."""
    path: Path = tiny.make_tiny_gemma(
        tmp_path_factory.mktemp("gemma") / "general", variants=("fp32", "fp16"), chat_template=TEMPLATE
    )
    return path


@pytest.fixture(scope="session")
def sized_pair(tiny: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two random-weight tiny models of different shapes sharing the generator's tokenizer (as
    E2B and E4B do): "big" (the default dims) and "small" (narrower, fewer layers)."""
    root = tmp_path_factory.mktemp("pair")
    small = tiny.TinyDims(
        hidden=48, layers=4, kv_shared=2, layer_types=("sliding_attention", "full_attention") * 2
    )
    return {
        "big": tiny.make_tiny_gemma(root / "big", variants=("fp32",), seed=3),
        "small": tiny.make_tiny_gemma(root / "small", variants=("fp32",), seed=9, dims=small),
    }


@pytest.fixture(scope="session")
def scripted_dir(tiny: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Decoder that calls HassTurnOn(kitchen light), then says the reply after the response."""
    script = [(CONTEXT, False), (CALL, True), (RESPONSE, False), (REPLY, True)]
    path: Path = tiny.make_tiny_gemma(
        tmp_path_factory.mktemp("gemma") / "scripted",
        variants=("fp32",),
        script=script,
        chat_template=TEMPLATE,
    )
    return path


@pytest.fixture(scope="session")
def looping_dir(tiny: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Decoder that calls HassTurnOn again after every response (tests the round bound)."""
    script = [(CONTEXT, False), (CALL, True), (RESPONSE, False), (CALL, True)]
    path: Path = tiny.make_tiny_gemma(
        tmp_path_factory.mktemp("gemma") / "looping",
        variants=("fp32",),
        script=script,
        chat_template=TEMPLATE,
    )
    return path


@pytest.fixture(scope="session")
def malformed_dir(tiny: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Decoder whose tool call has an unterminated string."""
    script = [(CONTEXT, False), (MALFORMED, True)]
    path: Path = tiny.make_tiny_gemma(
        tmp_path_factory.mktemp("gemma") / "malformed",
        variants=("fp32",),
        script=script,
        chat_template=TEMPLATE,
    )
    return path


@pytest.fixture
def home() -> Iterator[tuple[Router, Lights, ToolRegistry]]:
    """The real router over a registry holding HassTurnOn."""
    lights = Lights()
    registry = ToolRegistry()
    registry.add(lights.tool(), group="home")
    router = Router(registry)
    yield router, lights, registry
    router.close()


@pytest.fixture
def utterance() -> Callable[[float], Utterance]:
    """A seeded noise utterance of the given length in seconds."""

    def make(seconds: float = 1.0) -> Utterance:
        rng = np.random.default_rng(7)
        pcm = (rng.standard_normal(int(16000 * seconds)) * 2000).astype("<i2").tobytes()
        return Utterance(pcm=pcm, start_s=0.0, end_s=seconds, source="test")

    return make
