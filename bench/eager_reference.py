#!/usr/bin/env python3
"""Independent PyTorch-eager reference of metareward's decoder, for bench/side_by_side.sh.

A plain, written-from-the-spec Llama / Qwen2 decoder (RMSNorm in fp32, RoPE in the rotate_half
convention with the config's rope_theta, grouped-query attention, SwiGLU MLP, tied embeddings
when tie_word_embeddings) that reads the HF checkpoint directory written by
`metareward init-model` (config.json + model.safetensors, parsed here: an 8-byte little-endian
header length, a JSON header, raw little-endian tensor data). No transformers, no safetensors
package, no metareward code.

What each mode does is what an engineer writing "the obvious eager loop" would do: fp32,
torch.inference_mode for generation, a KV cache grown with torch.cat every step, explicit
causal-mask attention (torch 1.13 has no scaled_dot_product_attention), and no sharing of a
prompt's prefill between samples.

  eager_reference.py shapes --model DIR
  eager_reference.py check  --model DIR --metareward build/bin/metareward [--threads T]
  eager_reference.py gemm   [--threads T]
  eager_reference.py gen    --model DIR [--threads T] [--prompt-tokens 400] [--decode-steps 16]
                            [--batches 1,32] [--new-tokens 32] [--samples 11]
  eager_reference.py dpo    --model DIR [--threads T] [--pairs 8] [--prompt 128] [--response 128]
                            [--warmup 1] [--steps 2] [--beta 0.1] [--lr 1e-5]

Progress goes to stdout prefixed with "[eager]"; the numbers are `RESULT key=value ...` lines.
"""
import argparse
import json
import math
import os
import resource
import struct
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

# ------------------------------------------------------------------------------------------------
# Utilities


def log(msg):
    print("[eager] " + msg, flush=True)


def result(**kv):
    parts = []
    for k, v in kv.items():
        if isinstance(v, float):
            v = "%.6g" % v
        parts.append("%s=%s" % (k, v))
    print("RESULT " + " ".join(parts), flush=True)


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux.


def current_rss_mib():
    with open("/proc/self/statm") as f:
        resident = int(f.read().split()[1])
    return resident * os.sysconf("SC_PAGE_SIZE") / 1048576.0


def load_average():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def blas_library():
    """The BLAS shared object this process mapped (Debian's torch uses the libblas alternative)."""
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                name = os.path.basename(path)
                if "blas" in name or "mkl" in name or "blis" in name:
                    libs.add(os.path.realpath(path))
    except OSError:
        pass
    return ",".join(sorted(libs)) or "unknown"


# ------------------------------------------------------------------------------------------------
# safetensors (parsed by hand)

_DTYPES = {
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F64": torch.float64,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


def load_safetensors(path):
    """{name: tensor}. Each tensor owns one bytearray read straight from the file (no copies)."""
    if sys.byteorder != "little":
        raise RuntimeError("safetensors data is little-endian; this reader assumes a little-endian host")
    tensors = {}
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len).decode("utf-8"))
        base = 8 + header_len
        entries = [(k, v) for k, v in header.items() if k != "__metadata__"]
        entries.sort(key=lambda kv: kv[1]["data_offsets"][0])
        for name, info in entries:
            begin, end = info["data_offsets"]
            dtype = _DTYPES[info["dtype"]]
            shape = list(info["shape"])
            if end == begin:
                tensors[name] = torch.empty(shape, dtype=dtype)
                continue
            buf = bytearray(end - begin)
            f.seek(base + begin)
            if f.readinto(buf) != len(buf):
                raise RuntimeError("%s: truncated data for %s" % (path, name))
            tensors[name] = torch.frombuffer(buf, dtype=dtype).reshape(shape)
    return tensors


# ------------------------------------------------------------------------------------------------
# The model


class Config:
    def __init__(self, path):
        with open(path) as f:
            c = json.load(f)
        self.raw = c
        self.architecture = (c.get("architectures") or ["?"])[0]
        self.hidden = c["hidden_size"]
        self.intermediate = c["intermediate_size"]
        self.layers = c["num_hidden_layers"]
        self.heads = c["num_attention_heads"]
        self.kv_heads = c.get("num_key_value_heads") or self.heads
        self.head_dim = c.get("head_dim") or self.hidden // self.heads
        self.eps = c.get("rms_norm_eps", 1e-6)
        self.theta = float(c.get("rope_theta", 10000.0))
        self.vocab = c["vocab_size"]
        self.tie = bool(c.get("tie_word_embeddings", False))
        self.bos = c.get("bos_token_id")
        self.eos = c.get("eos_token_id")
        if c.get("hidden_act", "silu") != "silu":
            raise ValueError("only hidden_act=silu is implemented")
        if c.get("rope_scaling") not in (None, {}):
            raise ValueError("rope_scaling is not implemented in the eager reference")
        if c.get("rope_interleaved", False):
            raise ValueError("only the rotate_half RoPE convention is implemented")

    def describe(self):
        return (
            "%s: hidden %d, intermediate %d, layers %d, heads %d (kv %d, head_dim %d), vocab %d, "
            "rope_theta %g, rms_norm_eps %g, tied embeddings %s"
            % (
                self.architecture,
                self.hidden,
                self.intermediate,
                self.layers,
                self.heads,
                self.kv_heads,
                self.head_dim,
                self.vocab,
                self.theta,
                self.eps,
                "yes" if self.tie else "no",
            )
        )


def tokenizer_size(model_dir):
    """Ids the checkpoint's tokenizer.json can decode (max id + 1), or None without one. Like
    metareward's backend, generation samples only among these (the byte-level tokenizer of
    init-model has 259 ids in a 49152-row embedding)."""
    path = os.path.join(model_dir, "tokenizer.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        tok = json.load(f)
    ids = list((tok.get("model") or {}).get("vocab", {}).values())
    ids += [t["id"] for t in tok.get("added_tokens", [])]
    return max(ids) + 1 if ids else None


def rms_norm(x, weight, eps):
    xf = x.float()
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return weight * xf.to(x.dtype)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class EagerLM:
    def __init__(self, model_dir):
        self.cfg = Config(os.path.join(model_dir, "config.json"))
        cfg = self.cfg
        w = load_safetensors(os.path.join(model_dir, "model.safetensors"))
        for k in list(w):
            if w[k].is_floating_point() and w[k].dtype != torch.float32:
                w[k] = w[k].float()

        def take(name, required=True):
            if name in w:
                return w.pop(name)
            if required:
                raise KeyError("checkpoint has no tensor %s" % name)
            return None

        self.embed = take("model.embed_tokens.weight")
        self.norm = take("model.norm.weight")
        head = take("lm_head.weight", required=False)
        self.lm_head = self.embed if (cfg.tie or head is None) else head
        self.layers = []
        for i in range(cfg.layers):
            p = "model.layers.%d." % i
            self.layers.append(
                {
                    "in_norm": take(p + "input_layernorm.weight"),
                    "post_norm": take(p + "post_attention_layernorm.weight"),
                    "q": take(p + "self_attn.q_proj.weight"),
                    "k": take(p + "self_attn.k_proj.weight"),
                    "v": take(p + "self_attn.v_proj.weight"),
                    "o": take(p + "self_attn.o_proj.weight"),
                    "qb": take(p + "self_attn.q_proj.bias", required=False),  # Qwen2.
                    "kb": take(p + "self_attn.k_proj.bias", required=False),
                    "vb": take(p + "self_attn.v_proj.bias", required=False),
                    "gate": take(p + "mlp.gate_proj.weight"),
                    "up": take(p + "mlp.up_proj.weight"),
                    "down": take(p + "mlp.down_proj.weight"),
                }
            )
        leftover = [k for k in w if "rotary_emb" not in k]
        if leftover:
            raise KeyError("unused checkpoint tensors: %s" % leftover[:5])
        self.sample_vocab = min(cfg.vocab, tokenizer_size(model_dir) or cfg.vocab)
        d = cfg.head_dim
        self.inv_freq = 1.0 / (cfg.theta ** (torch.arange(0, d, 2, dtype=torch.float32) / d))

    def parameters(self):
        out, seen = [], set()
        tensors = [self.embed, self.norm, self.lm_head]
        for layer in self.layers:
            tensors.extend(t for t in layer.values() if t is not None)
        for t in tensors:
            if id(t) not in seen:
                seen.add(id(t))
                out.append(t)
        return out

    def parameter_count(self):
        return sum(t.numel() for t in self.parameters())

    def new_cache(self):
        return [None] * self.cfg.layers

    def hidden_states(self, ids, positions, cache=None):
        """Final-norm hidden states [B, T, hidden]. positions [B, T]; cache: list of (k, v) per
        layer, extended in place with torch.cat. Every row has the same length (no padding)."""
        cfg = self.cfg
        B, T = ids.shape
        H, KV, D = cfg.heads, cfg.kv_heads, cfg.head_dim
        rep = H // KV
        x = F.embedding(ids, self.embed)
        freqs = positions[..., None].float() * self.inv_freq  # [B, T, D/2]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos()[:, None], emb.sin()[:, None]  # [B, 1, T, D]
        past = 0 if cache is None or cache[0] is None else cache[0][0].shape[2]
        mask = None
        if T > 1:
            mask = torch.full((T, past + T), float("-inf")).triu(past + 1)
        scale = 1.0 / math.sqrt(D)
        for i, L in enumerate(self.layers):
            h = rms_norm(x, L["in_norm"], cfg.eps)
            q = F.linear(h, L["q"], L["qb"]).view(B, T, H, D).transpose(1, 2)
            k = F.linear(h, L["k"], L["kb"]).view(B, T, KV, D).transpose(1, 2)
            v = F.linear(h, L["v"], L["vb"]).view(B, T, KV, D).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            if cache is not None:
                if cache[i] is not None:
                    k = torch.cat((cache[i][0], k), dim=2)
                    v = torch.cat((cache[i][1], v), dim=2)
                cache[i] = (k, v)
            S = k.shape[2]
            if rep > 1:  # GQA: each kv head serves `rep` query heads.
                k = k[:, :, None].expand(B, KV, rep, S, D).reshape(B, H, S, D)
                v = v[:, :, None].expand(B, KV, rep, S, D).reshape(B, H, S, D)
            scores = torch.matmul(q, k.transpose(2, 3)) * scale
            if mask is not None:
                scores = scores + mask
            probs = torch.softmax(scores.float(), dim=-1).to(q.dtype)
            attn = torch.matmul(probs, v).transpose(1, 2).reshape(B, T, H * D)
            x = x + F.linear(attn, L["o"])
            h = rms_norm(x, L["post_norm"], cfg.eps)
            x = x + F.linear(F.silu(F.linear(h, L["gate"])) * F.linear(h, L["up"]), L["down"])
        return rms_norm(x, self.norm, cfg.eps)

    def logits(self, hidden):
        return F.linear(hidden, self.lm_head)


def positions_for(batch, start, length):
    return torch.arange(start, start + length, dtype=torch.long).expand(batch, length)


def sample(logits, temperature, top_p, generator):
    """logits [B, V] -> ids [B]: greedy at temperature 0, else temperature + nucleus sampling."""
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        cum = sorted_p.cumsum(-1)
        sorted_p = sorted_p.masked_fill(cum - sorted_p > top_p, 0.0)
        choice = torch.multinomial(sorted_p, 1, generator=generator)
        return order.gather(-1, choice).squeeze(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def generate(model, prompt_ids, rows, new_tokens, temperature, top_p, seed, eos=None):
    """The plain HF-style loop: `rows` copies of the prompt prefilled as one batch (no sharing),
    then one token per step for every row, sampled among the tokenizer's ids (model.sample_vocab).
    Returns (ids [rows, new], generated tokens, prefill s)."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.tensor([prompt_ids] * rows, dtype=torch.long)
    P = ids.shape[1]
    cache = model.new_cache()
    t0 = time.perf_counter()
    h = model.hidden_states(ids, positions_for(rows, 0, P), cache)
    V = model.sample_vocab
    nxt = sample(model.logits(h[:, -1])[:, :V], temperature, top_p, gen)
    prefill_s = time.perf_counter() - t0
    out = [nxt]
    done = torch.zeros(rows, dtype=torch.bool)
    generated = rows
    if eos is not None:
        done |= nxt == eos
    for step in range(1, new_tokens):
        if bool(done.all()):
            break
        h = model.hidden_states(nxt[:, None], positions_for(rows, P + step - 1, 1), cache)
        nxt = sample(model.logits(h[:, -1])[:, :V], temperature, top_p, gen)
        generated += int((~done).sum())
        if eos is not None:
            done |= nxt == eos
        out.append(nxt)
    return torch.stack(out, 1), generated, prefill_s


# ------------------------------------------------------------------------------------------------
# The prompts metareward's benches use


def prompt_text(tokens, variant):
    """bench/generation_bench.cpp's prompt_text(): about `tokens` ASCII bytes."""
    text = "Variant %d: " % variant
    filler = "the quick brown fox jumps over the lazy dog "
    while len(text) < tokens:
        text += filler
    return text[:tokens]


def plain_chat_ids(cfg, user_text):
    """The byte-level checkpoint's plain chat template with the generation prompt:
    bos + 'User: ' + text + '\\n' + 'Assistant: ' (one id per byte)."""
    ids = [cfg.bos] if cfg.bos is not None else []
    return ids + list(("User: " + user_text + "\nAssistant: ").encode("utf-8"))


def decode_bytes(ids):
    return bytes(i for i in ids if 0 <= i < 256).decode("utf-8", errors="replace")


# ------------------------------------------------------------------------------------------------
# Modes


def gemm_flops(n):
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = 0.0
    for _ in range(3):
        iters, t0 = 0, time.perf_counter()
        while True:
            torch.mm(a, b)
            iters += 1
            el = time.perf_counter() - t0
            if el >= 0.5:
                break
        best = max(best, 2.0 * n ** 3 * iters / el)
    return best


def cmd_gemm(args):
    g1, g2 = gemm_flops(1024), gemm_flops(2048)
    log("GEMM fp32 torch.mm: 1024^3 %.1f GFLOP/s, 2048^3 %.1f GFLOP/s (BLAS %s)" % (g1 / 1e9, g2 / 1e9, blas_library()))
    result(phase="gemm", gemm1024_gflops=g1 / 1e9, gemm2048_gflops=g2 / 1e9, gemm_gflops=max(g1, g2) / 1e9)
    return max(g1, g2)


def load_model(args):
    t0 = time.perf_counter()
    model = EagerLM(args.model)
    load_s = time.perf_counter() - t0
    log(
        "loaded %s (%.1f M parameters) in %.2f s, RSS %.0f MiB, torch %s, %d thread(s), BLAS %s"
        % (model.cfg.describe(), model.parameter_count() / 1e6, load_s, current_rss_mib(), torch.__version__,
           torch.get_num_threads(), blas_library())
    )
    return model, load_s


def cmd_shapes(args):
    cfg = Config(os.path.join(args.model, "config.json"))
    print(cfg.describe())


def cmd_gen(args):
    gemm = cmd_gemm(args)
    model, load_s = load_model(args)
    cfg = model.cfg
    rss_load = current_rss_mib()
    with torch.inference_mode():
        P = args.prompt_tokens
        # Prefill: one prompt of P byte-level ids, only the last position projected (as metareward's
        # bench does). Best of 3.
        ids = torch.randint(0, 256, (1, P), dtype=torch.long)
        best = 1e30
        for rep in range(3):
            cache = model.new_cache()
            t0 = time.perf_counter()
            model.logits(model.hidden_states(ids, positions_for(1, 0, P), cache)[:, -1])
            best = min(best, time.perf_counter() - t0)
        log("prefill %d tokens: %.3f s, %.0f tokens/s (load %s)" % (P, best, P / best, load_average()))
        result(phase="prefill", prompt_tokens=P, seconds=best, tokens_per_s=P / best)

        # 11 distinct prompts prefilled in one pass (batch of rows x P). Best of 2.
        rows = args.samples
        ids = torch.randint(0, 256, (rows, P), dtype=torch.long)
        best = 1e30
        for rep in range(2):
            cache = model.new_cache()
            t0 = time.perf_counter()
            model.logits(model.hidden_states(ids, positions_for(rows, 0, P), cache)[:, -1])
            best = min(best, time.perf_counter() - t0)
        log("prefill %d x %d tokens: one pass %.2f s, %.0f tokens/s (load %s)" % (rows, P, best, rows * P / best, load_average()))
        result(phase="prefill_rows", rows=rows, prompt_tokens=P, seconds=best, tokens_per_s=rows * P / best)

        # n samples of one chat prompt: `samples` identical rows prefilled as one batch, then
        # sampled (temperature 0.8, top-p 0.95, as metareward's bench), stopping a row at eos.
        prompt = plain_chat_ids(cfg, prompt_text(P, 0))
        generate(model, prompt, rows, args.new_tokens, 0.8, 0.95, 5, cfg.eos)  # Warm-up.
        t0 = time.perf_counter()
        _, generated, prefill_s = generate(model, prompt, rows, args.new_tokens, 0.8, 0.95, 6, cfg.eos)
        el = time.perf_counter() - t0
        log(
            "n=%d samples of a %d-token chat prompt (%d ids with the template), %d new tokens each: "
            "%d rows prefilled as a batch (no sharing) + decode: %.2f s (prefill %.2f s), %d generated, "
            "%.0f generated tokens/s (load %s)"
            % (rows, P, len(prompt), args.new_tokens, rows, el, prefill_s, generated, generated / el, load_average())
        )
        result(phase="n_samples", samples=rows, prompt_ids=len(prompt), new_tokens=args.new_tokens,
               seconds=el, prefill_s=prefill_s, generated=generated, tokens_per_s=generated / el)

        # Decode: context-64 random prompts, one untimed step, then decode_steps greedy steps.
        for batch in [int(b) for b in args.batches.split(",") if b]:
            context = 64
            ids = torch.randint(0, 256, (batch, context), dtype=torch.long)
            cache = model.new_cache()
            h = model.hidden_states(ids, positions_for(batch, 0, context), cache)
            nxt = model.logits(h[:, -1]).argmax(-1)
            elapsed = 0.0
            for step in range(args.decode_steps + 1):
                t0 = time.perf_counter()
                h = model.hidden_states(nxt[:, None], positions_for(batch, context + step, 1), cache)
                nxt = model.logits(h[:, -1]).argmax(-1)
                if step > 0:
                    elapsed += time.perf_counter() - t0
            tps = batch * args.decode_steps / elapsed
            log("decode batch %d: %.1f ms/step, %.0f tokens/s (load %s)" % (batch, 1000 * elapsed / args.decode_steps, tps, load_average()))
            result(phase="decode", batch=batch, ms_per_step=1000 * elapsed / args.decode_steps, tokens_per_s=tps)
    result(phase="gen_summary", params=model.parameter_count(), load_s=load_s, rss_after_load_mib=rss_load,
           peak_rss_mib=peak_rss_mib(), gemm_gflops=gemm / 1e9, threads=torch.get_num_threads(), load=load_average())


def cmd_dpo(args):
    """One DPO step as the obvious eager code does it: policy forward over chosen + rejected as one
    batch (full [2P, T, vocab] logits), log_softmax + gather of the response tokens, the DPO loss
    against reference log-probs computed once beforehand (no_grad, same model: one model resident),
    backward, grad-norm clip at 1.0, torch.optim.AdamW (lr, betas 0.9/0.999, eps 1e-8, no decay)."""
    model, load_s = load_model(args)
    cfg = model.cfg
    rss_model = current_rss_mib()
    params = model.parameters()
    for p in params:
        p.requires_grad_(True)
    gen = torch.Generator().manual_seed(1234)
    P, R, n = args.prompt, args.response, args.pairs
    prompt = torch.randint(0, cfg.vocab, (n, P), generator=gen)
    chosen = torch.randint(0, cfg.vocab, (n, R), generator=gen)
    rejected = torch.randint(0, cfg.vocab, (n, R), generator=gen)
    ids = torch.cat((torch.cat((prompt, chosen), 1), torch.cat((prompt, rejected), 1)), 0)  # [2n, P+R]
    T = P + R
    positions = positions_for(2 * n, 0, T)
    targets = ids[:, P:]
    tokens = ids.numel()

    def sequence_logps():
        logits = model.logits(model.hidden_states(ids, positions))
        logp = torch.log_softmax(logits[:, P - 1 : T - 1].float(), dim=-1)
        return logp.gather(-1, targets[..., None]).squeeze(-1).sum(-1)

    t0 = time.perf_counter()
    with torch.no_grad():
        ref = sequence_logps()
    ref_s = time.perf_counter() - t0
    log("reference log-probs of %d sequences x %d tokens: %.2f s (load %s)" % (2 * n, T, ref_s, load_average()))
    ref_c, ref_r = ref[:n], ref[n:]
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    step_tps = []
    total0 = time.perf_counter()
    for step in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        lp = sequence_logps()
        margin = args.beta * ((lp[:n] - ref_c) - (lp[n:] - ref_r))
        loss = -F.logsigmoid(margin).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        el = time.perf_counter() - t0
        step_tps.append(tokens / el)
        log("%s step %d: loss %.4f, %.2f s, %.1f tokens/s, RSS %.0f MiB (load %s)"
            % ("warm-up" if step < args.warmup else "measured", step + 1, loss.item(), el, tokens / el, current_rss_mib(), load_average()))
    total_s = time.perf_counter() - total0
    measured = step_tps[args.warmup:]
    tps = len(measured) / sum(1.0 / x for x in measured) if measured else 0.0
    result(phase="dpo", pairs=n, prompt=P, response=R, tokens_per_step=tokens, params=model.parameter_count(),
           load_s=load_s, ref_pass_s=ref_s, total_s=total_s, tokens_per_s=tps, rss_after_model_mib=rss_model,
           peak_rss_mib=peak_rss_mib(), threads=torch.get_num_threads(), load=load_average())


def cmd_check(args):
    """Agreement with metareward on a fixed token sequence: per-token log-probs from
    `metareward score` (every completion position) and a greedy continuation from
    `metareward generate --temperature 0`."""
    model, _ = load_model(args)
    cfg = model.cfg
    prompt = "Compare the eager reference with metareward: the quick brown fox jumps over the lazy dog."
    completion = " A fixed completion of a few dozen bytes, scored position by position."
    row = json.dumps({"prompt": prompt, "completion": completion})
    base = [args.metareward]
    common = ["--model", args.model, "--threads", str(args.threads)]
    out = subprocess.run(base + ["score"] + common, input=row + "\n", capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError("metareward score failed (%d): %s" % (out.returncode, out.stderr[-2000:]))
    scored = json.loads(out.stdout.strip().splitlines()[-1])
    comp_ids, mr_lp = scored["token_ids"], scored["token_logprobs"]
    prompt_ids = plain_chat_ids(cfg, prompt)
    expect = list(completion.encode("utf-8"))
    if comp_ids[: len(expect)] != expect:
        log("note: metareward's completion ids differ from the raw bytes: %s" % comp_ids[:10])
    seq = torch.tensor([prompt_ids + comp_ids], dtype=torch.long)
    with torch.inference_mode():
        logits = model.logits(model.hidden_states(seq, positions_for(1, 0, seq.shape[1])))[0]
    logp = torch.log_softmax(logits.float(), -1)
    n0 = len(prompt_ids)
    eager_lp = [float(logp[n0 - 1 + i, t]) for i, t in enumerate(comp_ids)]
    diffs = [abs(a - b) for a, b in zip(eager_lp, mr_lp)]
    max_diff = max(diffs)
    sum_diff = abs(sum(eager_lp) - scored["logprob_sum"])
    last = logits[-1]
    log("score: %d completion positions (prompt %d ids), max |dlogprob| %.3g, |dsum| %.3g (sum %.4f vs %.4f); "
        "last-position logits: mean %.4f std %.4f, argmax %d"
        % (len(comp_ids), n0, max_diff, sum_diff, sum(eager_lp), scored["logprob_sum"], float(last.mean()),
           float(last.std()), int(last.argmax())))

    # Greedy continuation, compared as decoded text (metareward's generate prints text).
    new = args.greedy_tokens
    gen_row = json.dumps({"prompt": prompt})
    out = subprocess.run(base + ["generate"] + common + ["--temperature", "0", "--max-new-tokens", str(new)],
                         input=gen_row + "\n", capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError("metareward generate failed (%d): %s" % (out.returncode, out.stderr[-2000:]))
    mr_text = json.loads(out.stdout.strip().splitlines()[-1])["completions"][0]["text"]
    with torch.inference_mode():
        ids = torch.tensor([prompt_ids], dtype=torch.long)
        cache = model.new_cache()
        h = model.hidden_states(ids, positions_for(1, 0, ids.shape[1]), cache)
        greedy, margins = [], []
        for step in range(new):
            lg = model.logits(h[:, -1])[0, : model.sample_vocab]
            top2 = lg.topk(2).values
            margins.append(float(top2[0] - top2[1]))
            t = int(lg.argmax())
            greedy.append(t)
            if t == cfg.eos:
                break
            h = model.hidden_states(torch.tensor([[t]]), positions_for(1, ids.shape[1] + step, 1), cache)
    eager_text = decode_bytes(greedy)
    non_byte = sum(1 for t in greedy if t >= 256)
    same = eager_text == mr_text
    log("greedy %d tokens: eager %r, metareward %r -> %s (min top-2 logit margin %.3g, %d non-byte ids)"
        % (len(greedy), eager_text, mr_text, "identical" if same else "DIFFERENT", min(margins), non_byte))
    result(phase="check", positions=len(comp_ids), max_abs_logprob_diff=max_diff, abs_sum_diff=sum_diff,
           greedy_tokens=len(greedy), greedy_match=1 if same else 0, min_top2_margin=min(margins),
           ok=1 if (max_diff < args.tolerance and same) else 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)

    def common(p, model=True):
        if model:
            p.add_argument("--model", required=True, help="HF checkpoint directory (config.json + model.safetensors)")
        p.add_argument("--threads", type=int, default=2)

    common(sub.add_parser("shapes"))
    common(sub.add_parser("gemm"), model=False)
    p = sub.add_parser("check")
    common(p)
    p.add_argument("--metareward", default="build/bin/metareward")
    p.add_argument("--greedy-tokens", type=int, default=24)
    p.add_argument("--tolerance", type=float, default=1e-3, help="max |dlogprob| that counts as agreement")
    p = sub.add_parser("gen")
    common(p)
    p.add_argument("--prompt-tokens", type=int, default=400)
    p.add_argument("--decode-steps", type=int, default=16)
    p.add_argument("--batches", default="1,32")
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--samples", type=int, default=11)
    p = sub.add_parser("dpo")
    common(p)
    p.add_argument("--pairs", type=int, default=8)
    p.add_argument("--prompt", type=int, default=128)
    p.add_argument("--response", type=int, default=128)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--beta", type=float, default=0.1)
    p.add_argument("--lr", type=float, default=1e-5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    {"shapes": cmd_shapes, "gemm": cmd_gemm, "check": cmd_check, "gen": cmd_gen, "dpo": cmd_dpo}[args.mode](args)


if __name__ == "__main__":
    main()
