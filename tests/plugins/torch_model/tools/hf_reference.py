#!/usr/bin/env python3
"""Reference logits for tests/plugins/torch_model (regenerates data/hf_reference.json).

An independent, plain-Python (float64, no numpy/torch) transcription of the eager forward pass
of Hugging Face transformers' LlamaForCausalLM / Qwen2ForCausalLM (modeling_llama.py,
modeling_qwen2.py, modeling_rope_utils.py): embeddings, LlamaRMSNorm, rotary embeddings with
rotate_half and the default/linear/llama3 frequency rules, repeat_kv grouped-query attention
with the causal mask, SwiGLU MLP, final norm and lm_head (tied or not).

Usage:
  1. export the test checkpoints:
       MR_EXPORT_DIR=/tmp/ref build/bin/mr_torch_model_tests "[export_reference]"
     (each case is a folder with config.json, model.safetensors (F32) and input_ids.json)
  2. python3 tests/plugins/torch_model/tools/hf_reference.py /tmp/ref \
       > tests/plugins/torch_model/data/hf_reference.json
"""

import json
import math
import os
import struct
import sys


def load_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    base = 8 + n
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", f"{name}: export F32 checkpoints"
        begin, end = info["data_offsets"]
        flat = list(struct.unpack("<%df" % ((end - begin) // 4), raw[base + begin : base + end]))
        shape = info["shape"]
        if len(shape) == 1:
            tensors[name] = flat
        else:
            rows, cols = shape
            tensors[name] = [flat[r * cols : (r + 1) * cols] for r in range(rows)]
    return tensors


def linear(x, w, b=None):
    out = [sum(wi * xi for wi, xi in zip(row, x)) for row in w]
    if b is not None:
        out = [o + bi for o, bi in zip(out, b)]
    return out


def rms_norm(x, w, eps):
    var = sum(v * v for v in x) / len(x)
    inv = 1.0 / math.sqrt(var + eps)
    return [wi * (v * inv) for wi, v in zip(w, x)]


def silu(v):
    return v / (1.0 + math.exp(-v))


def inv_freq(cfg, head_dim):
    base = cfg.get("rope_theta", 10000.0)
    inv = [1.0 / (base ** (i / head_dim)) for i in range(0, head_dim, 2)]
    rs = cfg.get("rope_scaling") or {}
    kind = rs.get("rope_type", rs.get("type", "default"))
    if kind == "linear":
        inv = [f / rs["factor"] for f in inv]
    elif kind == "llama3":
        # modeling_rope_utils._compute_llama3_parameters
        factor = rs["factor"]
        low_freq_factor = rs["low_freq_factor"]
        high_freq_factor = rs["high_freq_factor"]
        old_context_len = rs["original_max_position_embeddings"]
        low_freq_wavelen = old_context_len / low_freq_factor
        high_freq_wavelen = old_context_len / high_freq_factor
        out = []
        for f in inv:
            wavelen = 2 * math.pi / f
            g = f / factor if wavelen > low_freq_wavelen else f
            smooth = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
            smoothed = (1 - smooth) * g / factor + smooth * g
            is_medium = (not wavelen < high_freq_wavelen) and (not wavelen > low_freq_wavelen)
            out.append(smoothed if is_medium else g)
        inv = out
    return inv


def rotate_half(x):
    h = len(x) // 2
    return [-v for v in x[h:]] + x[:h]


def apply_rope(x, cos, sin):
    r = rotate_half(x)
    return [a * c + b * s for a, b, c, s in zip(x, r, cos, sin)]


def forward(cfg, t, ids):
    arch = cfg["architectures"][0]
    hidden = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    kv_heads = cfg.get("num_key_value_heads", heads)
    head_dim = cfg.get("head_dim", hidden // heads)
    n_rep = heads // kv_heads
    eps = cfg.get("rms_norm_eps", 1e-6)
    layers = cfg["num_hidden_layers"]
    qkv_bias = arch == "Qwen2ForCausalLM" or cfg.get("attention_bias", False)
    o_bias = arch != "Qwen2ForCausalLM" and cfg.get("attention_bias", False)
    mlp_bias = arch != "Qwen2ForCausalLM" and cfg.get("mlp_bias", False)
    freqs = inv_freq(cfg, head_dim)
    scaling = head_dim ** -0.5

    def b(name, present):
        return t[name] if present else None

    x = [list(t["model.embed_tokens.weight"][i]) for i in ids]
    n = len(ids)
    cos = []
    sin = []
    for p in range(n):
        emb = [p * f for f in freqs] * 2
        cos.append([math.cos(e) for e in emb])
        sin.append([math.sin(e) for e in emb])
    for l in range(layers):
        pre = f"model.layers.{l}."
        h = [rms_norm(v, t[pre + "input_layernorm.weight"], eps) for v in x]
        q = [linear(v, t[pre + "self_attn.q_proj.weight"], b(pre + "self_attn.q_proj.bias", qkv_bias)) for v in h]
        k = [linear(v, t[pre + "self_attn.k_proj.weight"], b(pre + "self_attn.k_proj.bias", qkv_bias)) for v in h]
        v_ = [linear(v, t[pre + "self_attn.v_proj.weight"], b(pre + "self_attn.v_proj.bias", qkv_bias)) for v in h]
        attn_out = [[0.0] * (heads * head_dim) for _ in range(n)]
        for hd in range(heads):
            kv = hd // n_rep  # repeat_kv
            qs = [apply_rope(q[i][hd * head_dim : (hd + 1) * head_dim], cos[i], sin[i]) for i in range(n)]
            ks = [apply_rope(k[j][kv * head_dim : (kv + 1) * head_dim], cos[j], sin[j]) for j in range(n)]
            vs = [v_[j][kv * head_dim : (kv + 1) * head_dim] for j in range(n)]
            for i in range(n):
                scores = [sum(a * c for a, c in zip(qs[i], ks[j])) * scaling for j in range(i + 1)]
                m = max(scores)
                e = [math.exp(s - m) for s in scores]
                z = sum(e)
                for d in range(head_dim):
                    attn_out[i][hd * head_dim + d] = sum(e[j] / z * vs[j][d] for j in range(i + 1))
        o = [linear(a, t[pre + "self_attn.o_proj.weight"], b(pre + "self_attn.o_proj.bias", o_bias)) for a in attn_out]
        x = [[xi + oi for xi, oi in zip(xv, ov)] for xv, ov in zip(x, o)]
        h = [rms_norm(v, t[pre + "post_attention_layernorm.weight"], eps) for v in x]
        mlp = []
        for v in h:
            g = linear(v, t[pre + "mlp.gate_proj.weight"], b(pre + "mlp.gate_proj.bias", mlp_bias))
            u = linear(v, t[pre + "mlp.up_proj.weight"], b(pre + "mlp.up_proj.bias", mlp_bias))
            mlp.append(linear([silu(gi) * ui for gi, ui in zip(g, u)], t[pre + "mlp.down_proj.weight"],
                              b(pre + "mlp.down_proj.bias", mlp_bias)))
        x = [[xi + mi for xi, mi in zip(xv, mv)] for xv, mv in zip(x, mlp)]
    x = [rms_norm(v, t["model.norm.weight"], eps) for v in x]
    head = t["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings", False) else t["lm_head.weight"]
    return [linear(v, head) for v in x]


def main():
    root = sys.argv[1]
    out = {
        "_generated_by": "tests/plugins/torch_model/tools/hf_reference.py (do not edit by hand)",
        "cases": {},
    }
    for name in sorted(os.listdir(root)):
        case = os.path.join(root, name)
        with open(os.path.join(case, "config.json")) as f:
            cfg = json.load(f)
        with open(os.path.join(case, "input_ids.json")) as f:
            ids = json.load(f)
        tensors = load_safetensors(os.path.join(case, "model.safetensors"))
        logits = forward(cfg, tensors, ids)
        out["cases"][name] = {
            "input_ids": ids,
            "logits": [[float("%.7g" % v) for v in row] for row in logits],
        }
    json.dump(out, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
