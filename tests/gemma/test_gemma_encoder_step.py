"""The per-step audio encoder graph on the transformers oracle (tests/data/gemma/oracle/).

scripts/convert_audio_encoder.py exported ``onnx/audio_encoder_step.onnx`` from the
oracle's tiny Gemma 4 (the same seeded weights as the stock ``audio_encoder.onnx``,
which transformers' own modeling code exported). No torch here: stepping the graph
with onnxruntime must give the stock graph's whole-clip soft tokens, and a streamed
turn over it must give transformers' greedy tokens with only the last soft tokens left
for the encoder after the end of speech.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gemma_helpers import ROOT, greedy

from assistant.brains.gemma.encoder_step import StepEncoder, window_start
from assistant.brains.gemma.files import check_model_dir, load_model_files
from assistant.brains.gemma.runtime import GemmaRuntime
from assistant.brains.gemma.stream import AudioPrefill, final_tokens
from assistant.errors import ModelFilesError

ORACLE = ROOT / "tests" / "data" / "gemma" / "oracle"
CASES = {c["name"]: c for c in json.loads((ORACLE / "oracle.json").read_text(encoding="utf-8"))["cases"]}
EXACT = 1e-5
FRAME = 320


@pytest.fixture(scope="module")
def runtime() -> GemmaRuntime:
    return GemmaRuntime(load_model_files(ORACLE, "fp32", "fp32"))


@pytest.fixture(scope="module")
def stock() -> GemmaRuntime:
    return GemmaRuntime(load_model_files(ORACLE, "fp32", "fp32"), step_encoder=False)


def _pcm(name: str) -> bytes:
    return (ORACLE / CASES[name]["audio"]).read_bytes()


def _rel(a: Any, b: Any) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _stepped(encoder: StepEncoder, features: Any, sizes: list[int]) -> Any:
    state = encoder.start()
    rows = []
    for size in sizes:
        upto = min(state.done + size, features.num_tokens)
        if upto <= state.done:
            break
        out, state = encoder.step(state, features, upto)
        rows.append(out)
    assert state.done == features.num_tokens
    return np.concatenate(rows)


@pytest.mark.parametrize("name", ["audio_2s", "audio_3s"])
def test_stepping_gives_the_stock_graphs_whole_clip_tokens(runtime: GemmaRuntime, name: str) -> None:
    assert runtime.step_encoder is not None
    features = runtime.features(np.frombuffer(_pcm(name), dtype="<i2"))
    assert features.num_tokens == CASES[name]["audio_tokens"]
    full = runtime.encode_audio(features)
    rng = np.random.default_rng(5)
    for sizes in ([6] * 20, [1] * 100, [int(x) for x in rng.integers(1, 15, 40)]):
        assert _rel(_stepped(runtime.step_encoder, features, sizes), full) < EXACT


def test_tokens_final_after_a_prefix_equal_the_whole_clip(runtime: GemmaRuntime) -> None:
    """After N samples the first floor((N-1)/640) stepped tokens are already the whole clip's."""
    assert runtime.step_encoder is not None
    wave = np.frombuffer(_pcm("audio_3s"), dtype="<i2")
    full = runtime.encode_audio(runtime.features(wave))
    config = runtime.features.config
    for n in (641, 3840, 3841, 12_000 + 161, 19_200 + 479, 30_000):
        final = final_tokens(n, config)
        features = runtime.features(wave[:n])
        part, _ = runtime.step_encoder.step(runtime.step_encoder.start(), features, features.num_tokens)
        assert features.num_tokens - final in (0, 1)  # at most the last token is provisional
        assert _rel(part[:final], full[:final]) < EXACT


def test_the_carried_state_is_not_written(runtime: GemmaRuntime) -> None:
    """Stepping twice from one state gives the same tokens (states are snapshots)."""
    encoder = runtime.step_encoder
    assert encoder is not None
    features = runtime.features(np.frombuffer(_pcm("audio_2s"), dtype="<i2"))
    _, state = encoder.step(encoder.start(), features, 10)
    a, _ = encoder.step(state, features, 16)
    encoder.step(state, features, 30)
    b, _ = encoder.step(state, features, 16)
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="nothing to encode"):
        encoder.step(state, features, 10)


def test_a_feature_window_gives_the_whole_clips_frames(runtime: GemmaRuntime) -> None:
    """Each step computes features for its own frames only; they are the whole clip's frames."""
    wave = np.frombuffer(_pcm("audio_3s"), dtype="<i2")
    whole = runtime.features(wave)
    hop = runtime.features.config.hop_length
    for done in (0, 1, 2, 7, 30, 77):
        sample, frame = window_start(done, hop)
        window = runtime.features(wave[sample:])
        read = max(0, 4 * done - 4)  # the first frame the step reads
        got = window.features[0, read - frame :]
        assert np.array_equal(got, whole.features[0, read : read + got.shape[0]])
        assert np.array_equal(window.mask[0, read - frame :], whole.mask[0, read : read + got.shape[0]])


def _stream(runtime: GemmaRuntime, name: str, pcm: bytes, step_samples: int) -> tuple[AudioPrefill, Any]:
    case = CASES[name]
    _, prefix = runtime.prefill(runtime.empty_cache(), case["ids"][: case["prefix_len"]])
    core = AudioPrefill(runtime, prefix.frozen())
    for start in range(0, len(pcm), FRAME * 2):
        core.add(pcm[start : start + FRAME * 2])
        if core.pending_samples >= step_samples:
            core.step()
    tail = case["ids"][case["prefix_len"] + 2 + case["audio_tokens"] :]
    return core, tail


@pytest.mark.parametrize("name", ["audio_2s", "audio_3s"])
@pytest.mark.parametrize("step_samples", [3840, 640])
def test_streamed_turn_with_the_step_graph_gives_transformers_tokens(
    runtime: GemmaRuntime, stock: GemmaRuntime, name: str, step_samples: int
) -> None:
    case = CASES[name]
    pcm = _pcm(name)
    results = {}
    for label, rt in (("step", runtime), ("stock", stock)):
        core, tail = _stream(rt, name, pcm, step_samples)
        result = core.close(pcm, tail)
        assert result is not None and not result.reprefilled
        assert greedy(rt, result.logits, result.cache, len(case["tokens"])) == case["tokens"]
        results[label] = (core, result)
    core, result = results["step"]
    # The stock graph re-encodes the whole clip after the end of speech; the step graph
    # only the tokens that were not final at the last step.
    assert results["stock"][1].encoder_tokens == case["audio_tokens"]
    assert result.encoder_tokens == case["audio_tokens"] - core.early_tokens
    assert result.encoder_tokens <= (4 if step_samples == 640 else 7)
    # While the user spoke each soft token went through the encoder once.
    assert core.early_encoder_tokens == core.early_tokens


def test_an_utterance_ending_before_the_streamed_audio_restarts_from_a_kept_state(
    runtime: GemmaRuntime,
) -> None:
    """The hangover was streamed too: the encoder resumes from the last state before the utterance's end."""
    case = CASES["audio_2s"]
    pcm = _pcm("audio_2s")
    hangover = (np.random.default_rng(9).standard_normal(9600) * 300).astype("<i2").tobytes()
    core, tail = _stream(runtime, "audio_2s", pcm + hangover, 3840)
    assert core.early_tokens > case["audio_tokens"]
    result = core.close(pcm, tail)
    assert result is not None and not result.reprefilled and result.dropped > 0
    assert result.encoder_tokens <= 7  # one 240 ms step at most, not the whole clip
    assert greedy(runtime, result.logits, result.cache, len(case["tokens"])) == case["tokens"]


def test_a_graph_without_the_step_contract_is_refused(tmp_path: Path) -> None:
    moved = tmp_path / "oracle"
    shutil.copytree(ORACLE, moved)
    shutil.copyfile(moved / "onnx" / "audio_encoder.onnx", moved / "onnx" / "audio_encoder_step.onnx")
    files = load_model_files(moved, "fp32", "fp32")
    with pytest.raises(ModelFilesError, match="audio_encoder_step"):
        GemmaRuntime(files)
    report = check_model_dir(moved, "fp32", "fp32")
    assert not report.ok and "past_keys" in report.render()
    assert GemmaRuntime(files, step_encoder=False).step_encoder is None
    (moved / "onnx" / "audio_encoder_step.onnx").unlink()
    assert GemmaRuntime(load_model_files(moved, "fp32", "fp32")).step_encoder is None
