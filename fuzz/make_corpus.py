#!/usr/bin/env python3
"""Regenerates the seed corpora under fuzz/corpus/<harness>/ from real project files: the shipped
configs, the testbed seed model (its config.json, tokenizer files and a shrunk copy of its
safetensors header), the shared tokenizer fixtures (truncated copies and their test texts) and the
request/row shapes the tests use. Files named regression-* are crash reproducers and are kept.

Usage: python3 fuzz/make_corpus.py   (from the repository root; ../shared optional)
"""
import json
import pathlib
import shutil
import struct

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
SHARED = ROOT.parent / "shared" / "fixtures" / "tokenizers"
SEED_MODEL = ROOT / "configs" / "testbed" / "seed" / "seed_model"


def reset(harness):
    d = CORPUS / harness
    d.mkdir(parents=True, exist_ok=True)
    for f in d.iterdir():
        if not f.name.startswith("regression-"):
            f.unlink()
    return d


def write(d, name, data):
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def safetensors(tensors, metadata=None, pad_to=8, data_extra=b""):
    """A .safetensors file: {name: (dtype, shape)} laid out contiguously, like the writer."""
    size = {"F32": 4, "F16": 2, "BF16": 2}
    header, offset = {}, 0
    for name, (dtype, shape) in sorted(tensors.items()):
        n = size.get(dtype, 4)
        for s in shape:
            n *= s
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % pad_to)
    data = bytes((i * 37) & 0xFF for i in range(offset)) + data_extra
    return struct.pack("<Q", len(text)) + text + data


def seed_model_header():
    """The testbed seed model's tensor names and dtypes with every dimension shrunk to <= 2."""
    raw = (SEED_MODEL / "model.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    meta = header.pop("__metadata__", None)
    tensors = {k: (v["dtype"], [min(s, 2) for s in v["shape"]]) for k, v in list(header.items())[:12]}
    return safetensors(tensors, meta)


def gen_safetensors():
    d = reset("fuzz_safetensors_header")
    write(d, "f32_2x2", safetensors({"w": ("F32", [2, 2])}, {"format": "pt"}))
    write(d, "mixed_dtypes", safetensors({"a": ("F16", [3]), "b": ("BF16", [1, 2]), "c": ("F32", [])}))
    write(d, "empty_tensor", safetensors({"e": ("F32", [0, 4]), "x": ("F32", [1])}))
    write(d, "no_tensors", safetensors({}, {"format": "pt", "note": "empty"}))
    write(d, "seed_model_shrunk", seed_model_header())
    d = reset("fuzz_safetensors_index")
    shard1, shard2 = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
    index = {"metadata": {"total_size": 28}, "weight_map": {"a": shard1, "b": shard1, "c": shard2}}
    write(d, "index_full", json.dumps(index, indent=2))
    write(d, "index_one_shard", json.dumps({"weight_map": {"c": shard2}}))
    write(d, "index_missing_tensor", json.dumps({"weight_map": {"a": shard1, "z": shard2}}))
    write(d, "index_outside_dir", json.dumps({"weight_map": {"a": "../" + shard1}}))


def gen_model_config():
    d = reset("fuzz_model_config")
    for f in [SEED_MODEL / "config.json", *sorted((ROOT / "bench" / "configs").glob("*.config.json"))]:
        write(d, f.parent.name + "_" + f.name if f.name == "config.json" else f.name, f.read_bytes())
    base = json.loads((SEED_MODEL / "config.json").read_text())
    base["rope_scaling"] = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                            "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
    base["eos_token_id"] = [1, 2]
    write(d, "llama3_rope_scaling.json", json.dumps(base, indent=1))
    write(d, "model_type_only.json", json.dumps({"model_type": "qwen2", "hidden_size": 8,
          "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
          "num_key_value_heads": 1, "vocab_size": 10, "tie_word_embeddings": True}))


def truncated_tokenizer(path, keep_ids):
    """tokenizer.json with the vocabulary cut to ids < keep_ids and the merges that stay valid."""
    j = json.loads(path.read_text())
    vocab = {t: i for t, i in j["model"]["vocab"].items() if i < keep_ids}
    merges = []
    for m in j["model"]["merges"]:
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        if a in vocab and b in vocab and a + b in vocab:
            merges.append(m)
    j["model"]["vocab"] = vocab
    j["model"]["merges"] = merges[:200]
    j["added_tokens"] = j["added_tokens"][:4]
    return json.dumps(j, ensure_ascii=False, separators=(",", ":"))


def gen_tokenizer():
    d = reset("fuzz_tokenizer_json")
    write(d, "seed_model_byte_level.json", (SEED_MODEL / "tokenizer.json").read_bytes())
    for name in ["llama3", "qwen3"]:
        if (SHARED / name / "tokenizer.json").exists():
            write(d, name + "_truncated.json", truncated_tokenizer(SHARED / name / "tokenizer.json", 400))
    write(d, "tiny_bpe_sequence.json", json.dumps({
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": 7, "content": "<s>", "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True}],
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"}]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithNext", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                           {"Sequence": {"id": "A", "type_id": 0}}], "pair": [],
                           "special_tokens": {"<s>": {"id": "<s>", "ids": [7], "tokens": ["<s>"]}}},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": False, "vocab": {"a": 0, "b": 1, "ab": 2, "\u0120": 3, "\u0120ab": 4, "1": 5, "2": 6},
                  "merges": [["a", "b"], ["\u0120", "ab"]]}}))
    d = reset("fuzz_tokenizer_encode")
    texts = []
    for name in ["llama3", "qwen3"]:
        cases = SHARED / name / "cases.jsonl"
        if cases.exists():
            texts += [json.loads(line)["text"] for line in cases.read_text().splitlines()[:40]]
    texts += ["Hello, world!", "<|begin_of_text|>hi<|eot_id|>", "\u00e9t\u00e9 \u4e2d\u6587 \U0001F600"]
    seen = set()
    for i, text in enumerate(texts):
        raw = text.encode("utf-8", "surrogatepass")
        if raw in seen or len(raw) > 2000:
            continue
        seen.add(raw)
        write(d, f"text_{i:03d}", bytes([i % 16 & ~2]) + raw)  # encode modes (bit 1 clear)
    write(d, "bad_utf8", b"\x00\xff\xfe\xc3(\xe2\x82 a\x80b")
    write(d, "decode_ids", b"\x02" + b"".join(struct.pack("<I", i)[:3] for i in [9906, 11, 1917, 0, 128009, 220]))
    write(d, "decode_split_char", b"\x06" + b"".join(struct.pack("<I", i)[:3] for i in [226, 224, 100, 33]))


def gen_chat():
    d = reset("fuzz_chat_template")
    conv = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Sort 3 1 2"},
            {"role": "assistant", "content": "1 2 3"}, {"role": "user", "content": "  and 9 8?  "}]
    config = json.loads((SEED_MODEL / "tokenizer_config.json").read_text())
    llama_tpl = "{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>{% endfor %}"
    cases = {
        "plain_seed_model": {"format": "auto", "chat_template": config.get("chat_template"),
                             "bos_token": "<|bos|>", "eos_token": "<|eos|>", "messages": conv, "response": "9 8"},
        "plain_explicit": {"format": "plain", "eos_token": "<|eos|>", "messages": conv[1:2], "response": "1 2 3",
                           "add_generation_prompt": False},
        "llama3_auto": {"format": "auto", "chat_template": llama_tpl, "bos_token": "<|begin_of_text|>",
                        "messages": conv, "response": "  8 9\n"},
        "chatml_default_system": {"format": "auto", "chat_template":
                                  "{% if not system %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>",
                                  "messages": conv[1:], "response": "8 9"},
        "custom_options": {"format": "custom", "options": {"user_prefix": "U: ", "assistant_prefix": "A: ",
                           "end_of_turn": "<|end|>", "trim_content": "true"}, "messages": conv, "response": "x"},
        "unknown_role": {"format": "chatml", "chat_template": "<|im_start|>", "messages": [{"role": "tool", "content": "{}"}]},
    }
    for name, case in cases.items():
        write(d, name + ".json", json.dumps(case, indent=1))
    write(d, "generation_config.json", (SEED_MODEL / "generation_config.json").read_bytes())


def gen_config():
    d = reset("fuzz_config_toml")
    for f in sorted((ROOT / "configs").glob("*.toml")) + sorted((ROOT / "configs" / "testbed").glob("*.toml")):
        write(d, f.parent.name + "_" + f.name, f.read_bytes())
    write(d, "minimal_with_sets.toml", '#set pair_selection.rho=0.1\n#set run.iterations=2\n'
          '#set optimizer.learning_rate=[1e-6, 5e-7]\n#set judge_rubric.type="additive5"\n'
          '[models.policy]\ntype = "torch"\npath = "m"\n')


def gen_jsonl():
    d = reset("fuzz_jsonl_rows")
    prompts = (ROOT / "configs" / "testbed" / "seed" / "data" / "train_prompts.jsonl").read_text().splitlines()
    write(d, "train_prompts_head.jsonl", "\n".join(prompts[:12]) + "\n")
    rows = [
        {"prompt": "Sort 3 1 2", "chosen": "1 2 3", "rejected": "3 2 1", "chosen_truncated": False},
        {"messages": [{"role": "user", "content": "hi"}], "chosen": [{"role": "assistant", "content": "hello"}],
         "rejected": [{"role": "assistant", "content": "go away"}], "rejected_truncated": True},
        {"id": "x", "prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
         "chosen": "c", "rejected": "r"},
    ]
    write(d, "pairs.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    sft = [{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                         {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]}]
    write(d, "sft.jsonl", "\n".join(json.dumps(r) for r in sft) + "\n")
    write(d, "score_rows.jsonl", '{"prompt": "Add 2 + 2", "completion": "4"}\n'
          '{"messages": [{"role": "user", "content": "x"}], "completion": "y"}\n')
    write(d, "mixed_bad_rows.jsonl", '{"instruction": "Do it", "input": "now"}\n\n  \n[1,2]\n{"prompt": 3}\n'
          'not json\n{"prompt": "ok", "id": 7}\n{"messages": "nope"}\n')


def gen_scores():
    d = reset("fuzz_score_parsers")
    write(d, "additive_judgment", "The response is relevant (+1) and addresses most of it (+1).\n\nScore: 4")
    write(d, "echoed_format", "Conclude with: Score: <total points>\n...\n**Score:** 3.5")
    write(d, "score_na", "Score: 4\nOn reflection: Score: N/A")
    write(d, "verdict_a", "Both are fine but A is clearer.\nWinner: Judgement A")
    write(d, "verdict_template_echo", "Winner: [Judgement A | Judgement B]\nWinner: judgment b")
    write(d, "custom_pattern", "rating\\s*=\\s*(\\d+)\nI'd give it rating = 7 out of 10. Winner: (b)")
    write(d, "custom_pattern_verdict", "verdict:\\s*([ab])\nverdict: A ... verdict: b")


def gen_serve():
    d = reset("fuzz_serve_request")
    bodies = {
        "chat.json": {"model": "tiny", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "Sort 3 1 2"}],
                      "max_tokens": 16, "temperature": 0.7, "top_p": 0.9, "n": 2, "seed": 7, "stop": ["\n"]},
        "chat_stream.json": {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                             "stream": True, "stream_options": {"include_usage": True}, "max_completion_tokens": 8},
        "completion.json": {"model": "tiny", "prompt": "Once upon", "max_tokens": 5, "top_k": 4, "stop": "."},
        "completion_list_prompt.json": {"prompt": ["a"], "logprobs": None, "presence_penalty": 0, "frequency_penalty": 0.0},
        "tokenize_vllm.json": {"model": "tiny", "prompt": "hello"},
        "tokenize_llamacpp.json": {"content": "hello"},
        "wrong_model.json": {"model": "other", "messages": []},
    }
    for name, body in bodies.items():
        write(d, name, json.dumps(body))


if __name__ == "__main__":
    gen_safetensors()
    gen_model_config()
    gen_tokenizer()
    gen_chat()
    gen_config()
    gen_jsonl()
    gen_scores()
    gen_serve()
    for d in sorted(CORPUS.iterdir()):
        files = list(d.iterdir())
        print(f"{d.name}: {len(files)} files, {sum(f.stat().st_size for f in files)} bytes")
