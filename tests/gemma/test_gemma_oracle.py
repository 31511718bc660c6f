"""Parity with transformers on a real-architecture tiny Gemma 4 (tests/data/gemma/oracle/).

scripts/make_gemma_oracle.py built a random Gemma4ForConditionalGeneration from
transformers' own modeling code (sliding + full layers with head dims 16/32, a sliding
window shorter than every prompt, KV sharing, per-layer inputs, the conformer audio
tower), exported it in the onnx-community layout and stored transformers' greedy
tokens and per-step logits. No torch here: the runtime must reproduce them on every
prefill path.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gemma_helpers import ROOT

from assistant.brains.gemma.files import check_model_dir, load_model_files
from assistant.brains.gemma.runtime import GemmaRuntime, KVCache, Sampler, Sampling

ORACLE = ROOT / "tests" / "data" / "gemma" / "oracle"
LOGIT_TOLERANCE = 1e-3
"""Max |logit difference| allowed (softcapped logits of size ~10; fp32 ORT vs torch is ~1e-4)."""

CASES: list[dict[str, Any]] = json.loads((ORACLE / "oracle.json").read_text(encoding="utf-8"))["cases"]
BY_NAME = {case["name"]: case for case in CASES}


@pytest.fixture(scope="module")
def runtime() -> GemmaRuntime:
    return GemmaRuntime(load_model_files(ORACLE, "fp32", "fp32"))


def _audio(runtime: GemmaRuntime, case: dict[str, Any]) -> Any:
    if "audio" not in case:
        return None
    pcm = np.frombuffer((ORACLE / case["audio"]).read_bytes(), dtype="<i2")
    features = runtime.features(pcm)
    assert features.num_tokens == case["audio_tokens"]
    return runtime.encode_audio(features)


def _greedy(runtime: GemmaRuntime, logits: Any, cache: KVCache, case: dict[str, Any]) -> list[int]:
    """Greedy continuation step by step, checking every step's logits against transformers'."""
    tokens = []
    for step, reference in enumerate(case["logits"]):
        diff = float(np.max(np.abs(logits - np.asarray(reference, dtype=np.float32))))
        assert diff < LOGIT_TOLERANCE, f"{case['name']} step {step}: logits differ by {diff}"
        token = int(np.argmax(logits))
        tokens.append(token)
        if step + 1 < len(case["logits"]):
            logits, cache = runtime.prefill(cache, [token])
    return tokens


def test_the_oracle_directory_passes_the_model_check() -> None:
    report = check_model_dir(ORACLE, "fp32", "fp32")
    assert report.ok, report.render()
    files = load_model_files(ORACLE, "fp32", "fp32")
    # The fixture exercises what the real E2B/E4B have: two head dims, KV sharing, GQA.
    assert {files.text.slot_head_dim(i) for i in range(files.text.num_kv_slots)} == {16, 32}
    assert files.text.num_kv_shared_layers > 0
    # Special tokens are not at Gemma's real ids (nothing may rely on them by accident).
    assert files.tokens.audio != 258881 and 1 not in files.tokens.stop and 106 not in files.tokens.stop


def test_the_oracle_is_small() -> None:
    size = sum(p.stat().st_size for p in ORACLE.rglob("*") if p.is_file())
    assert size < 5 * 1024 * 1024


@pytest.mark.parametrize("name", [case["name"] for case in CASES])
def test_full_prefill_matches_transformers(runtime: GemmaRuntime, name: str) -> None:
    case = BY_NAME[name]
    logits, cache = runtime.prefill(runtime.empty_cache(), case["ids"], audio=_audio(runtime, case))
    assert _greedy(runtime, logits, cache, case) == case["tokens"]


@pytest.mark.parametrize("name", ["text", "audio_2s", "audio_3s"])
def test_cached_prefix_matches_transformers(runtime: GemmaRuntime, name: str) -> None:
    case = BY_NAME[name]
    cut = case["prefix_len"]
    _, prefix = runtime.prefill(runtime.empty_cache(), case["ids"][:cut])
    prefix = prefix.frozen()
    for _ in range(2):  # the frozen prefix serves two turns unchanged
        logits, cache = runtime.prefill(prefix, case["ids"][cut:], audio=_audio(runtime, case))
        assert _greedy(runtime, logits, cache, case) == case["tokens"]


@pytest.mark.parametrize(("name", "chunk"), [("text", 7), ("audio_2s", 16), ("audio_3s", 5)])
def test_chunked_prefill_matches_transformers(runtime: GemmaRuntime, name: str, chunk: int) -> None:
    case = BY_NAME[name]
    logits, cache = runtime.prefill(
        runtime.empty_cache(), case["ids"], audio=_audio(runtime, case), chunk=chunk
    )
    assert _greedy(runtime, logits, cache, case) == case["tokens"]


def test_tool_round_matches_transformers(runtime: GemmaRuntime) -> None:
    """Round 1 decoded by runtime.generate, the response block appended to the live cache."""
    case = BY_NAME["tool_round"]
    first_len = case["first_round_len"]
    _, prefix = runtime.prefill(runtime.empty_cache(), case["ids"][: case["prefix_len"]])
    logits, cache = runtime.prefill(
        prefix, case["ids"][case["prefix_len"] : first_len], audio=_audio(runtime, case)
    )
    generation = runtime.generate(
        cache, logits, max_new_tokens=len(case["first_round"]), sampler=Sampler(Sampling())
    )
    assert list(generation.tokens) == case["first_round"]
    assert generation.stop_token is None and len(generation.unfed) == 1
    feed = list(generation.unfed) + case["response"]
    logits, cache = runtime.prefill(generation.cache, feed)
    assert _greedy(runtime, logits, cache, case) == case["tokens"]


def test_generate_matches_transformers(runtime: GemmaRuntime) -> None:
    case = BY_NAME["audio_3s"]
    logits, cache = runtime.prefill(runtime.empty_cache(), case["ids"], audio=_audio(runtime, case))
    generation = runtime.generate(
        cache,
        logits,
        max_new_tokens=len(case["tokens"]),
        sampler=Sampler(Sampling()),
        cancel=threading.Event(),
    )
    assert list(generation.tokens) == case["tokens"]


def test_audio_encoder_is_causal_on_the_exported_graph(runtime: GemmaRuntime) -> None:
    """Soft tokens [0, floor((N-1)/640)) of a prefix equal the whole clip's (the streaming premise)."""
    pcm = np.frombuffer((ORACLE / "audio_3s.pcm").read_bytes(), dtype="<i2")
    full = runtime.encode_audio(runtime.features(pcm))
    scale = float(np.max(np.abs(full)))
    for n in (641, 3840, 7681, 12000, 20481, 30000, pcm.shape[0] - 1):
        final = (n - 1) // 640
        part = runtime.encode_audio(runtime.features(pcm[:n]))
        assert part.shape[0] >= final
        assert float(np.max(np.abs(part[:final] - full[:final]))) <= 1e-5 * scale, n


def test_fixture_records_where_it_came_from() -> None:
    data = json.loads((ORACLE / "oracle.json").read_text(encoding="utf-8"))
    assert data["transformers"].startswith("5.") and data["torch"].startswith("2.")
    assert Path(ROOT / "scripts" / "make_gemma_oracle.py").is_file()
