#!/usr/bin/env python3
"""Export Gemma 4's audio tower as a per-step ONNX graph that carries its layer state.

The stock onnx-community ``audio_encoder`` graph is stateless, so a streamed utterance
still needs a whole-clip encoder pass after the end of speech. This script writes
``<model dir>/onnx/audio_encoder_step.onnx``: it takes the mel frames of the newly final
soft tokens (4 per token, plus 4 frames of overlap for the two stride-2 convolutions)
and the carried state, and returns those soft tokens (after ``output_proj`` and the
multimodal embedder: what the stock graph returns) and the new state. The contract is
in assistant/brains/gemma/encoder_step.py.

The streaming forward is written here from the encoder's causal structure (reference
gemma4-audio-streaming.md sections 1 and 5) and uses the checkpoint's own modules for
everything that works per position (feed-forwards, norms, clippable linears, the SSCP
convolutions, the embedder):

- SSCP: the new frames with a 4-frame overlap go through both conv layers (with the
  frame mask, as transformers multiplies it in); the overlap's output token is dropped.
- Attention: each query sees itself and the 11 keys before it (distance 0..11, causal);
  the state is the last 11 scaled keys and values; keys before the utterance are masked.
- Light conv: the causal depthwise conv reads the last ``kernel - 1`` GLU rows (state).

Needs torch and transformers (the oracle virtualenv, see scripts/make_gemma_oracle.py):

    # a real checkpoint (safetensors + config.json) into an onnx-community model dir
    /tmp/oracle-venv/bin/python scripts/convert_audio_encoder.py MODEL_DIR --checkpoint HF_DIR
    # the oracle fixture: its tiny random model is rebuilt from make_gemma_oracle's seed
    /tmp/oracle-venv/bin/python scripts/convert_audio_encoder.py tests/data/gemma/oracle --oracle

After exporting, the step graph is stepped over the clips given with ``--check`` (int16
PCM files; the oracle's own clips with ``--oracle``) in 6-token chunks and compared with
the model dir's stock ``onnx/audio_encoder.onnx`` over the whole clip; the script fails
when the max relative difference exceeds 1e-5.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assistant.brains.gemma.encoder_step import STEP_INPUTS, STEP_OUTPUTS, StepEncoder  # noqa: E402
from assistant.brains.gemma.features import FeatureExtractor  # noqa: E402

TOLERANCE = 1e-5
CHECK_CHUNK = 6  # tokens per step in the check (240 ms)


class StreamingAudioEncoder(nn.Module):
    """Gemma 4's audio tower + audio embedder, one chunk of new soft tokens per call."""

    def __init__(self, tower: nn.Module, embedder: nn.Module) -> None:
        super().__init__()
        config = tower.config
        if config.attention_context_right != 0:
            raise SystemExit("attention_context_right != 0: the encoder has lookahead; no step graph")
        self.tower = tower
        self.embedder = embedder
        self.context = config.attention_context_left - 2  # past keys per query (distance 1..11)
        self.kernel = config.conv_kernel_size
        self.heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.clip = min(config.gradient_clipping, torch.finfo(torch.float32).max)
        self.invalid = config.attention_invalid_logits_value
        for layer in tower.layers:
            conv = layer.lconv1d.depthwise_conv1d
            if conv.stride[0] != 1 or conv.dilation[0] != 1 or conv.bias is not None:
                raise SystemExit("unexpected depthwise conv (stride/dilation/bias)")

    def _attention(
        self,
        attn: nn.Module,
        x: torch.Tensor,
        past_k: torch.Tensor,
        past_v: torch.Tensor,
        key_valid: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = x.shape[1]
        h, d, c = self.heads, self.head_dim, self.context
        q = attn.q_proj(x).float().reshape(n, h, d) * attn.q_scale * F.softplus(attn.per_dim_scale)
        k = attn.k_proj(x).float().reshape(n, h * d) * attn.k_scale
        v = attn.v_proj(x).float().reshape(n, h * d)
        keys = torch.cat([past_k, k], dim=0)  # [c + n, h*d]
        values = torch.cat([past_v, v], dim=0)
        # window j = 0..c of query i is the key at concat index i + j, distance c - j
        index = torch.arange(n)[:, None] + torch.arange(c + 1)[None, :]
        kw = keys[index].reshape(n, c + 1, h, d)
        vw = values[index].reshape(n, c + 1, h, d)
        # relative-position rows: the table holds position values 12, 11, ..., 0; distance c - j
        table = self.tower.rel_pos_enc(x)  # [1?, P, hidden]
        table = table.reshape(-1, table.shape[-1])
        rows = table.shape[0]
        rel = attn.relative_k_proj(table[rows - 1 - c :]).reshape(c + 1, h, d)  # distance c..0
        logits = torch.einsum("ihd,ijhd->ihj", q, kw) + torch.einsum("ihd,jhd->ihj", q, rel)
        logits = torch.tanh(logits / attn.softcap) * attn.softcap
        valid = key_valid[index]  # [n, c + 1]
        logits = logits.masked_fill(~valid[:, None, :], self.invalid)
        weights = F.softmax(logits, dim=-1, dtype=torch.float32)
        out = torch.einsum("ihj,ijhd->ihd", weights, vw).reshape(1, n, h * d)
        return attn.post(out.to(x.dtype)), keys[n:], values[n:]

    def _light_conv(
        self, lc: nn.Module, x: torch.Tensor, past: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        residual = x
        g = F.glu(lc.linear_start(lc.pre_layer_norm(x)), dim=-1)  # [1, n, hidden]
        rows = torch.cat([past[None], g], dim=1)  # [1, kernel - 1 + n, hidden]
        conv = lc.depthwise_conv1d
        y = F.conv1d(rows.transpose(1, 2), conv.weight, None, 1, 0, 1, conv.groups).transpose(1, 2)
        y = lc.conv_norm(torch.clamp(y, -self.clip, self.clip))
        y = lc.linear_end(lc.act_fn(y))
        return y + residual, rows[0, rows.shape[1] - (self.kernel - 1) :]

    def forward(  # noqa: PLR0917  (torch.onnx.export passes the graph inputs positionally)
        self,
        input_features: torch.Tensor,
        input_features_mask: torch.Tensor,
        past_tokens: torch.Tensor,
        past_keys: torch.Tensor,
        past_values: torch.Tensor,
        past_conv: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        hidden, _ = self.tower.subsample_conv_projection(input_features, input_features_mask)
        x = hidden[:, 1:]  # the overlap's token is the previous chunk's (or before the utterance)
        n = x.shape[1]
        c = self.context
        key_pos = past_tokens - c + torch.arange(c + n)
        key_valid = key_pos >= 0
        new_k, new_v, new_c = [], [], []
        for i, layer in enumerate(self.tower.layers):
            x = layer.feed_forward1(x)
            residual = x
            a = layer.norm_pre_attn(torch.clamp(x, -self.clip, self.clip))
            a, k, v = self._attention(layer.self_attn, a, past_keys[i], past_values[i], key_valid)
            x = layer.norm_post_attn(torch.clamp(a, -self.clip, self.clip)) + residual
            x, conv_rows = self._light_conv(layer.lconv1d, x, past_conv[i])
            x = layer.feed_forward2(x)
            x = layer.norm_out(torch.clamp(x, -self.clip, self.clip))
            new_k.append(k)
            new_v.append(v)
            new_c.append(conv_rows)
        out = self.embedder(self.tower.output_proj(x))[0]
        return out, torch.stack(new_k), torch.stack(new_v), torch.stack(new_c)


def export(module: StreamingAudioEncoder, path: Path) -> None:
    config = module.tower.config
    layers, hidden = config.num_hidden_layers, config.hidden_size
    n = 6
    feats = torch.randn(1, 4 + 4 * n, 128)
    mask = torch.ones(1, 4 + 4 * n, dtype=torch.bool)
    args = (
        feats,
        mask,
        torch.tensor([3], dtype=torch.long),
        torch.randn(layers, module.context, hidden),
        torch.randn(layers, module.context, hidden),
        torch.randn(layers, module.kernel - 1, hidden),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        module,
        args,
        str(path),
        input_names=list(STEP_INPUTS),
        output_names=list(STEP_OUTPUTS),
        dynamic_axes={
            "input_features": {1: "num_frames"},
            "input_features_mask": {1: "num_frames"},
            "audio_features": {0: "num_audio_tokens"},
        },
        opset_version=17,
        dynamo=False,
    )


def _oracle_model(model_dir: Path) -> Any:
    """The oracle's tiny model: its config.json and make_gemma_oracle's seeded weights."""
    from transformers import Gemma4Config, Gemma4ForConditionalGeneration  # noqa: PLC0415

    spec = importlib.util.spec_from_file_location(
        "make_gemma_oracle", ROOT / "scripts" / "make_gemma_oracle.py"
    )
    if spec is None or spec.loader is None:
        raise ImportError("scripts/make_gemma_oracle.py")
    oracle = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(oracle)
    config = Gemma4Config.from_pretrained(model_dir)
    for part in (config, config.text_config, config.audio_config):
        part._attn_implementation = "eager"
    torch.manual_seed(oracle.SEED)
    model = Gemma4ForConditionalGeneration(config).eval()
    oracle.randomise(model, oracle.SEED)
    return model


def _checkpoint_model(checkpoint: Path) -> Any:
    from transformers import Gemma4ForConditionalGeneration  # noqa: PLC0415

    # The stored dtype (bf16 for the released checkpoints: half the memory of fp32); only the
    # audio tower and its embedder are exported, in fp32 (a bf16 -> fp32 cast is exact).
    model = Gemma4ForConditionalGeneration.from_pretrained(checkpoint, dtype="auto").eval()
    model.model.audio_tower.float()
    model.model.embed_audio.float()
    return model


def check(model_dir: Path, step_path: Path, clips: list[Path]) -> float:
    """Max relative difference of stepped vs whole-clip soft tokens over the clips."""
    import onnxruntime as ort  # noqa: PLC0415

    stock = ort.InferenceSession(
        str(model_dir / "onnx" / "audio_encoder.onnx"), providers=["CPUExecutionProvider"]
    )
    step = StepEncoder(ort.InferenceSession(str(step_path), providers=["CPUExecutionProvider"]))
    fe = FeatureExtractor()
    worst = 0.0
    for clip in clips:
        pcm = np.frombuffer(clip.read_bytes(), dtype="<i2")
        feats = fe(pcm)
        full = stock.run(
            ["audio_features"], {"input_features": feats.features, "input_features_mask": feats.mask}
        )[0]
        full = full.reshape(-1, full.shape[-1])
        state = step.start()
        rows = []
        while state.done < feats.num_tokens:
            out, state = step.step(state, feats, min(state.done + CHECK_CHUNK, feats.num_tokens))
            rows.append(out)
        got = np.concatenate(rows)
        rel = float(np.max(np.abs(got - full)) / np.max(np.abs(full)))
        worst = max(worst, rel)
        print(f"{clip.name}: {feats.num_tokens} tokens in {len(rows)} steps, max rel diff {rel:.2e}")
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "model_dir", type=Path, help="onnx-community model directory (gets onnx/audio_encoder_step.onnx)"
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, help="Hugging Face Gemma 4 checkpoint directory")
    source.add_argument("--oracle", action="store_true", help="rebuild the oracle fixture's tiny model")
    parser.add_argument(
        "--check", type=Path, nargs="*", default=[], help="int16 16 kHz PCM clips to check on"
    )
    args = parser.parse_args(argv)
    model_dir: Path = args.model_dir
    model = _oracle_model(model_dir) if args.oracle else _checkpoint_model(args.checkpoint)
    module = StreamingAudioEncoder(model.model.audio_tower, model.model.embed_audio).eval()
    path = model_dir / "onnx" / "audio_encoder_step.onnx"
    with torch.no_grad():
        export(module, path)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    clips = list(args.check) or (sorted(model_dir.glob("audio_*.pcm")) if args.oracle else [])
    if clips:
        worst = check(model_dir, path, clips)
        if worst > TOLERANCE:
            print(f"NOT EXACT: max rel diff {worst:.2e} > {TOLERANCE:g}")
            return 1
        print(f"exact: max rel diff {worst:.2e} <= {TOLERANCE:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
