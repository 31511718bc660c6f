"""The model-file contract: reading declared facts, `models check`, pull's file selection."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import onnx
import pytest
import yaml
from gemma_helpers import settings_for

from assistant.brains.gemma.brain import make_gemma_brain
from assistant.brains.gemma.cli import models_check
from assistant.brains.gemma.files import check_model_dir, load_model_files
from assistant.brains.gemma.pull import REPOS, RemoteFile, select_files, verify_file
from assistant.errors import ModelFilesError

ROOT = Path(__file__).resolve().parents[2]


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_declared_facts_come_from_the_files(general_dir: Path) -> None:
    files = load_model_files(general_dir, "fp32", "fp32")
    config = json.loads((general_dir / "config.json").read_text())
    assert files.text.num_kv_slots == 3
    assert [files.text.slot_head_dim(i) for i in range(3)] == [16, 16, 32]
    assert files.tokens.audio == config["audio_token_id"] != 258881  # tiny vocabulary: not the real id
    assert files.tokens.stop == {1, 106, 50}
    assert files.tokens.get("call_open") == 48


def test_check_passes_on_the_tiny_set(general_dir: Path) -> None:
    out = io.StringIO()
    assert models_check(general_dir, "fp32", "fp32", out=out) == 0
    assert "verdict: OK" in out.getvalue()
    assert check_model_dir(general_dir, "fp16", "fp32").ok


def test_renamed_input_gives_a_clear_broken_verdict(general_dir: Path, tmp_path: Path) -> None:
    broken = _copy(general_dir, tmp_path / "broken")
    path = broken / "onnx" / "decoder_model_merged.onnx"
    model = onnx.load(str(path))
    for value in model.graph.input:
        if value.name == "position_ids":
            value.name = "position_idx"
    for node in model.graph.node:
        node.input[:] = ["position_idx" if name == "position_ids" else name for name in node.input]
    onnx.save_model(model, str(path), save_as_external_data=True, location="decoder_model_merged.onnx_data")
    report = check_model_dir(broken, "fp32", "fp32")
    assert not report.ok
    text = report.render()
    with pytest.raises(ModelFilesError, match="position_ids"):
        make_gemma_brain(settings_for(broken))
    assert "missing input 'position_ids'" in text
    assert "unexpected input 'position_idx'" in text
    assert text.splitlines()[-1].startswith("verdict: BROKEN")


def test_head_dim_disagreeing_with_config_is_reported(general_dir: Path, tmp_path: Path) -> None:
    broken = _copy(general_dir, tmp_path / "dims")
    config = json.loads((broken / "config.json").read_text())
    config["text_config"]["global_head_dim"] = 64
    (broken / "config.json").write_text(json.dumps(config))
    report = check_model_dir(broken, "fp32", "fp32")
    assert not report.ok
    assert "past_key_values.2.key' dim 3 is 32, the config says 64" in report.render()


def test_missing_files_and_bad_json_are_clear_errors(general_dir: Path, tmp_path: Path) -> None:
    assert "does not exist" in check_model_dir(tmp_path / "nowhere").render()
    report = check_model_dir(general_dir, "q4f16", "fp32")
    assert "missing onnx/embed_tokens_q4f16.onnx" in report.render()
    broken = _copy(general_dir, tmp_path / "json")
    (broken / "generation_config.json").write_text("{not json")
    with pytest.raises(ModelFilesError, match=r"generation_config\.json"):
        load_model_files(broken, "fp32", "fp32")
    (broken / "generation_config.json").write_text("{}")
    # config.json's eos plus <|tool_response> from the tokenizer still make the stop set.
    assert load_model_files(broken, "fp32", "fp32").tokens.stop == {1, 106, 50}
    config = json.loads((broken / "config.json").read_text())
    del config["eos_token_id"], config["text_config"]["eos_token_id"]
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFilesError, match="stop ids"):
        load_model_files(broken, "fp32", "fp32")


def test_processor_config_without_feature_extractor_is_refused(general_dir: Path, tmp_path: Path) -> None:
    broken = _copy(general_dir, tmp_path / "proc")
    (broken / "processor_config.json").write_text("{}")
    with pytest.raises(ModelFilesError, match="feature_extractor"):
        load_model_files(broken, "fp32", "fp32")


def test_corrupt_graph_is_reported_not_raised(general_dir: Path, tmp_path: Path) -> None:
    broken = _copy(general_dir, tmp_path / "corrupt")
    (broken / "onnx" / "audio_encoder.onnx").write_bytes(b"\x00garbage")
    report = check_model_dir(broken, "fp32", "fp32")
    assert "onnxruntime cannot open it" in report.render()


# -- pull: only the selection logic can run here (no network in tests) ------------------------

REPO_LISTING = [
    "README.md",
    ".gitattributes",
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "processor_config.json",
    *[
        f"onnx/{g}{s}.onnx"
        for g in ("embed_tokens", "audio_encoder", "decoder_model_merged", "vision_encoder")
        for s in ("", "_fp16", "_q4", "_q4f16", "_quantized")
    ],
    *[
        f"onnx/{g}{s}.onnx_data"
        for g in ("embed_tokens", "audio_encoder", "decoder_model_merged", "vision_encoder")
        for s in ("", "_fp16", "_q4", "_q4f16", "_quantized")
    ],
    "onnx/decoder_model_merged.onnx_data_1",
    "onnx/decoder_model_merged.onnx_data_10",
    "onnx/decoder_model_merged.onnx_data_2",
    "onnx/decoder_model_merged_q4.onnx_data_1",
    "onnx/embed_tokens_q4.onnx_data_1",
]


def test_pull_selects_exactly_the_needed_files() -> None:
    chosen = select_files(REPO_LISTING, "q4", "fp32")
    assert chosen == [
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        "processor_config.json",
        "onnx/embed_tokens_q4.onnx",
        "onnx/embed_tokens_q4.onnx_data",
        "onnx/embed_tokens_q4.onnx_data_1",
        "onnx/audio_encoder.onnx",
        "onnx/audio_encoder.onnx_data",
        "onnx/decoder_model_merged_q4.onnx",
        "onnx/decoder_model_merged_q4.onnx_data",
        "onnx/decoder_model_merged_q4.onnx_data_1",
    ]
    fp32 = select_files(REPO_LISTING, "fp32", "fp16")
    assert [n for n in fp32 if n.startswith("onnx/decoder")] == [
        "onnx/decoder_model_merged.onnx",
        "onnx/decoder_model_merged.onnx_data",
        "onnx/decoder_model_merged.onnx_data_1",
        "onnx/decoder_model_merged.onnx_data_2",
        "onnx/decoder_model_merged.onnx_data_10",
    ]
    assert not any("vision" in n or "_q4f16" in n for n in fp32)


def test_pull_refuses_a_repository_without_the_variant() -> None:
    listing = [n for n in REPO_LISTING if "_q4f16" not in n]
    with pytest.raises(ModelFilesError, match=r"decoder_model_merged_q4f16\.onnx"):
        select_files(listing, "q4f16", "fp32")


def test_verify_file_checks_size_and_sha256(tmp_path: Path) -> None:
    import hashlib

    path = tmp_path / "f"
    path.write_bytes(b"hello")
    digest = hashlib.sha256(b"hello").hexdigest()
    assert verify_file(path, RemoteFile("f", 5, digest)) is None
    assert "sha256 mismatch" in str(verify_file(path, RemoteFile("f", 5, "0" * 64)))
    assert "bytes" in str(verify_file(path, RemoteFile("f", 6, None)))
    assert "missing" in str(verify_file(tmp_path / "g", RemoteFile("g")))


def test_manifests_agree_with_the_puller() -> None:
    for name, repo in REPOS.items():
        manifest = yaml.safe_load((ROOT / "models" / f"gemma-4-{name}.yaml").read_text())
        assert manifest["repo"] == repo
        assert manifest["name"] == name
        assert set(manifest["graphs"]) == {"embed_tokens", "audio_encoder", "decoder_model_merged"}


# -- config.json as transformers 5.x writes it -------------------------------------------------

DATA = ROOT / "tests" / "data" / "gemma"


def test_transformers5_config_reads_the_full_attention_head_dim_from_per_layer_config() -> None:
    from assistant.brains.gemma.files import read_text_config

    # Written by transformers 5.24 Gemma4TextConfig.to_dict() with the E2B values: no
    # global_head_dim, per_layer_config {"04": {"head_dim": 512}, ...}.
    config = json.loads((DATA / "config_e2b_transformers5.json").read_text())
    assert "global_head_dim" not in config["text_config"]
    text = read_text_config(config)
    assert text.num_kv_slots == 15
    dims = [text.slot_head_dim(i) for i in range(text.num_kv_slots)]
    assert [i for i, d in enumerate(dims) if d == 512] == [4, 9, 14]
    assert set(dims) == {256, 512}
    assert {text.slot_kv_heads(i) for i in range(15)} == {1}
    # Neither field: transformers' own default (512), not head_dim.
    legacy = json.loads(json.dumps(config))
    del legacy["text_config"]["per_layer_config"]
    assert read_text_config(legacy).slot_head_dim(4) == 512


def test_transformers5_shaped_tiny_config_passes_check(general_dir: Path, tmp_path: Path) -> None:
    moved = _copy(general_dir, tmp_path / "t5")
    config = json.loads((moved / "config.json").read_text())
    text = config["text_config"]
    del text["global_head_dim"]
    text["per_layer_config"] = {"2": {"head_dim": 32}, "5": {"head_dim": 32}}
    (moved / "config.json").write_text(json.dumps(config))
    report = check_model_dir(moved, "fp32", "fp32")
    assert report.ok, report.render()
    bad = json.loads(json.dumps(config))
    bad["text_config"]["per_layer_config"] = {"2": {"head_dim": 64}}
    (moved / "config.json").write_text(json.dumps(bad))
    assert (
        "past_key_values.2.key' dim 3 is 32, the config says 64"
        in check_model_dir(moved, "fp32", "fp32").render()
    )
    bad["text_config"]["per_layer_config"] = {"x": {}}
    (moved / "config.json").write_text(json.dumps(bad))
    assert "per_layer_config key 'x'" in check_model_dir(moved, "fp32", "fp32").render()
