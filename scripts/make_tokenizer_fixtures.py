#!/usr/bin/env python3
"""Writes the tokenizer golden fixtures under tests/fixtures/tokenizer/.

Independent references, never our own code:
  * HF `tokenizers` builds and then encodes the tokenizer.json files (one per pre-tokenizer
    flavour: SmolLM/GPT-2, Llama-3, Qwen2; and Qwen2 with the NFC normalizer of the real
    Qwen2/Qwen2.5 files, on a smaller vocabulary, with text holding decomposed characters).
  * llama.cpp (PyPI `llama-cpp-python`, vocab_only) encodes with vocab-only GGUF files written
    here from the same vocabularies (byte-level BPE with pre = smollm, gpt2, llama-bpe, qwen2;
    and a SentencePiece "llama" vocabulary trained here with PyPI `sentencepiece`).

The byte-level vocabulary is SmolLM2-135M-Instruct's (from its GGUF), cut to the first
--vocab-size ids (merges kept when both parts and the result survive) so the committed files stay
small; ids are the real model's ids.

smollm2_gguf_ids.json holds ids only: llama.cpp's ids for the fixture texts under the REAL, full
SmolLM2 GGUF vocabulary (the test loads the same GGUF, which scripts/fetch-model.sh fetches).

Usage: python3 scripts/make_tokenizer_fixtures.py [--gguf PATH] [--vocab-size 4096]
           [--nfc-vocab-size 1024]
Needs: pip install tokenizers sentencepiece gguf llama-cpp-python
"""

import argparse
import base64
import json
import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "tokenizer"

# Regexes as the original tokenizer.json files write them.
GPT2_RE = (r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+")
LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
             r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
            r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

VARIED = (
    "The quick brown fox jumps over the lazy dog. It's 5 o'clock; we're late, they'll say "
    "I'd've known. DON'T SHOUT, We'Re Fine, YOU'LL see.\n"
    "   Leading spaces, trailing spaces   \n\n\n"
    "\tTabbed\tcolumns\t\tdouble\ttab\n"
    "Windows line\r\nendings\r\n\r\n"
    "Numbers: 0 7 42 1234 12345 1234567 3.14159265358979 1,000,000 -273.15 2024-06-30 "
    "0x7fffffff 1e-9 99999999999999999999\n"
    "def fib(n: int) -> int:\n"
    "    if n < 2:\n"
    "        return n\n"
    "    return fib(n - 1) + fib(n - 2)  # recursion!\n"
    "\n"
    "int main(){for(int i=0;i<10;++i){printf(\"%d\\n\",i);}return 0;}\n"
    "    {\"key\": [1, 2, 3], \"nested\": {\"a\": null}}\n"
    "中文文本测试：今天天气很好。日本語のテキストです。한국어 텍스트입니다.\n"
    "Emoji: 😀 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️ ✨🚀\n"
    "Accents: café naïve résumé Ærøskøbing; decomposed: cafe\u0301 e\u0308\n"
    "Русский текст, ελληνικά, العربية, हिन्दी, ไทย.\n"
    "Odd spaces:\u00a0nbsp,\u3000ideographic,\u2009thin,\u200bzero-width.\n"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\nHi there!<|im_end|><|im_start|>assistant\n"
    "Not special: <|im_star <|im_end| <im_start> <|unknown|>\n"
    "Repeated: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa ------------------------------ ..........\n"
    "URL https://example.com/path?q=1&r=two#frag and e-mail someone@example.org\n"
    "Mixed1234abc under_score CamelCaseWord snake_case_word kebab-case-word\n"
    "Ends with spaces and newlines   \n  \n"
)

SMALL_CASES = [
    ("empty", ""),
    ("space", " "),
    ("hello", "Hello world"),
    ("leading_space", " Hello"),
    ("spaces_run", "a      b"),
    ("newlines", "\n\n\nx\n"),
    ("digits", "1234567890"),
    ("special_only", "<|im_start|>"),
    ("special_adjacent", "a<|im_end|>b <|im_start|> c"),
    ("cjk", "日本語"),
    ("emoji", "👨‍👩‍👧"),
]

# Text whose NFC form differs from it (tokenizer.json with the NFC normalizer).
NFC_CASES = [
    ("nfc_acute", "e\u0301"),
    ("nfc_cafe", "cafe\u0301 au lait, re\u0301sume\u0301, nai\u0308ve"),
    ("nfc_already_composed", "caf\u00e9 r\u00e9sum\u00e9"),
    ("nfc_reorder", "a\u0302\u0323 q\u0307\u0323"),  # canonical order, then composition
    ("nfc_singletons", "\u212b \u2126 \u0344"),  # Angstrom, Ohm, combining Greek dialytika
    ("nfc_hangul_jamo", "\u1112\u1161\u11ab\u1100\u1173\u11af"),  # -> two syllables
    ("nfc_keeps_compat", "\ufb01 \u2460 \uff21"),  # compatibility forms: NFC leaves them
    ("nfc_mark_after_literal", "<|im_start|>\u0301e\u0301<|im_end|>"),
    ("nfc_normalized_added", "my re\u0301sume\u0301 and my r\u00e9sum\u00e9"),
]
# A non-special added token matched after normalization (HF normalizes its content too).
NFC_ADDED = "r\u00e9sum\u00e9"

# Invalid UTF-8 where Python's errors="replace" and llama.cpp agree: each bad byte -> U+FFFD.
INVALID_AGREE = b"abc\xffdef \x80 caf\xc3 x\xfe end"
# A truncated multi-byte sequence: llama.cpp gives one U+FFFD per byte (we follow it); Python
# gives one per maximal subpart, so this case is checked against llama.cpp only.
INVALID_TRUNCATED = b"a\xe2\x82 b \xf0\x9f\x98"


def read_gguf_vocab(path):
    import gguf
    r = gguf.GGUFReader(str(path))

    def arr(key, conv):
        f = r.fields[key]
        return [conv(f.parts[i]) for i in f.data]

    def scalar(key):
        f = r.fields[key]
        return f.parts[-1][0].item()

    tokens = arr("tokenizer.ggml.tokens", lambda p: bytes(p).decode("utf-8"))
    types = arr("tokenizer.ggml.token_type", lambda p: int(p[0]))
    merges = arr("tokenizer.ggml.merges", lambda p: bytes(p).decode("utf-8"))
    hparams = {k: scalar(k) for k in r.fields if k.startswith("llama.")}
    return {
        "tokens": tokens, "token_types": types, "merges": merges,
        "bos_id": scalar("tokenizer.ggml.bos_token_id"),
        "eos_id": scalar("tokenizer.ggml.eos_token_id"),
        "unk_id": scalar("tokenizer.ggml.unknown_token_id"),
        "pad_id": scalar("tokenizer.ggml.padding_token_id"),
        "hparams": hparams,
    }


def truncate(v, n):
    tokens = v["tokens"][:n]
    idx = {t: i for i, t in enumerate(tokens)}
    merges = []
    for m in v["merges"]:
        a, b = m.split(" ", 1)
        if a in idx and b in idx and (a + b) in idx:
            merges.append(m)
    return dict(v, tokens=tokens, token_types=v["token_types"][:n], merges=merges)


def write_gguf(path, hparams, vocab):
    import gguf
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(int(hparams["llama.context_length"]))
    w.add_embedding_length(int(hparams["llama.embedding_length"]))
    w.add_block_count(int(hparams["llama.block_count"]))
    w.add_feed_forward_length(int(hparams["llama.feed_forward_length"]))
    w.add_rope_dimension_count(int(hparams["llama.rope.dimension_count"]))
    w.add_head_count(int(hparams["llama.attention.head_count"]))
    w.add_head_count_kv(int(hparams["llama.attention.head_count_kv"]))
    w.add_layer_norm_rms_eps(float(hparams["llama.attention.layer_norm_rms_epsilon"]))
    w.add_rope_freq_base(float(hparams["llama.rope.freq_base"]))
    w.add_vocab_size(len(vocab["tokens"]))
    w.add_tokenizer_model(vocab["model"])
    w.add_tokenizer_pre(vocab["pre"])
    w.add_token_list(vocab["tokens"])
    w.add_token_types(vocab["token_types"])
    if vocab.get("scores"):
        w.add_token_scores(vocab["scores"])
    if vocab.get("merges"):
        w.add_token_merges(vocab["merges"])
    for key, fn in (("bos_id", w.add_bos_token_id), ("eos_id", w.add_eos_token_id),
                    ("unk_id", w.add_unk_token_id), ("pad_id", w.add_pad_token_id)):
        if vocab.get(key, -1) >= 0:
            fn(vocab[key])
    w.add_add_bos_token(vocab["add_bos"])
    w.add_add_space_prefix(vocab["add_space_prefix"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def build_hf(vocab, flavour, string_merges, nfc=False):
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
    from tokenizers import pre_tokenizers
    from tokenizers import processors
    ids = {t: i for i, t in enumerate(vocab["tokens"])}
    merges = [tuple(m.split(" ", 1)) for m in vocab["merges"]]
    tok = Tokenizer(models.BPE(vocab=ids, merges=merges, ignore_merges=(flavour == "llama3")))
    if flavour == "smollm":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    else:
        pattern = LLAMA3_RE if flavour == "llama3" else QWEN2_RE
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    specials = [t for t, ty in zip(vocab["tokens"], vocab["token_types"]) if ty == 3]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    if flavour == "llama3":
        tok.add_special_tokens([AddedToken("<|begin_of_text|>", special=True, normalized=False)])
        bos = tok.token_to_id("<|begin_of_text|>")
        tok.post_processor = processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single="<|begin_of_text|> $A",
                pair="<|begin_of_text|> $A <|begin_of_text|>:1 $B:1",
                special_tokens=[("<|begin_of_text|>", bos)])])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    if flavour == "qwen2":
        # Non-special added tokens (Qwen-style): new ids past the vocabulary.
        tok.add_tokens([AddedToken("<think>", special=False, normalized=False),
                        AddedToken("</think>", special=False, normalized=False)])
    if nfc:
        tok.normalizer = normalizers.NFC()
        tok.add_tokens([AddedToken(NFC_ADDED, special=False, normalized=True)])
    data = json.loads(tok.to_str())
    if string_merges:
        data["model"]["merges"] = [" ".join(m) for m in data["model"]["merges"]]
    return data


def cases_for(encode, varied, invalid_cases, extra_cases=()):
    out = []
    for add_special in (False, True):
        out.append({"name": "varied", "file": "varied.txt", "add_special": add_special,
                    "ids": encode(varied.encode("utf-8"), add_special)})
        for name, text in SMALL_CASES + list(extra_cases):
            out.append({"name": name, "text": text, "add_special": add_special,
                        "ids": encode(text.encode("utf-8"), add_special)})
        for name, raw in invalid_cases:
            out.append({"name": name, "hex": raw.hex(), "add_special": add_special,
                        "ids": encode(raw, add_special)})
    return out


def train_spm(tmp):
    import sentencepiece as spm
    corpus = tmp / "corpus.txt"
    lic = pathlib.Path("/usr/share/common-licenses")
    text = "".join(p.read_text(errors="ignore") for p in sorted(lic.glob("*")) if p.is_file())
    corpus.write_text(text + VARIED)
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(tmp / "spm"), vocab_size=1500, model_type="bpe",
        byte_fallback=True, character_coverage=1.0, num_threads=1, seed_sentencepiece_size=100000,
        user_defined_symbols=["<|im_start|>", "<|im_end|>"], split_digits=True,
        minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=str(tmp / "spm.model"))
    tokens, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        tokens.append(sp.id_to_piece(i))
        scores.append(float(sp.get_score(i)))
        types.append(2 if sp.is_unknown(i) else 3 if sp.is_control(i) else
                     6 if sp.is_byte(i) else 5 if sp.is_unused(i) else
                     4 if tokens[-1] in ("<|im_start|>", "<|im_end|>") else 1)
    return {"model": "llama", "pre": "default", "tokens": tokens, "token_types": types,
            "scores": scores, "merges": [], "bos_id": sp.bos_id(), "eos_id": sp.eos_id(),
            "unk_id": sp.unk_id(), "pad_id": -1, "add_bos": True, "add_space_prefix": True}


def llama_encode(gguf_path):
    import llama_cpp
    llm = llama_cpp.Llama(model_path=str(gguf_path), vocab_only=True, verbose=False)

    def encode(raw, add_special):
        return [int(t) for t in llm.tokenize(raw, add_bos=add_special, special=True)]
    return encode, llm


def dump_json(path, obj):
    # One case per line, ids on that line: diffs stay readable.
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


def vocab_json(v):
    keys = ["model", "pre", "tokens", "token_types", "scores", "merges", "bos_id", "eos_id",
            "unk_id", "pad_id", "add_bos", "add_space_prefix"]
    return {k: v[k] for k in keys}


def write_real_vocab_ids(gguf_path, vocab_size):
    """llama.cpp ids for the fixture texts under the full SmolLM2 vocabulary (ids only)."""
    encode, llm = llama_encode(gguf_path)
    fixtures = ROOT / "tests" / "fixtures"
    cases = []
    for name, rel in (("varied", "tokenizer/varied.txt"), ("gpl3_excerpt", "text/gpl3_excerpt.txt")):
        ids = encode((fixtures / rel).read_bytes(), False)
        cases.append({"name": name, "file": rel, "add_special": False, "ids": ids})
    for add_special in (False, True):
        for name, text in SMALL_CASES:
            cases.append({"name": name, "text": text, "add_special": add_special,
                          "ids": encode(text.encode("utf-8"), add_special)})
        for name, raw in (("invalid_utf8", INVALID_AGREE), ("invalid_truncated", INVALID_TRUNCATED)):
            cases.append({"name": name, "hex": raw.hex(), "add_special": add_special,
                          "ids": encode(raw, add_special)})
    del llm
    with open(OUT / "smollm2_gguf_ids.json", "w", encoding="utf-8") as f:
        head = {"gguf": pathlib.Path(gguf_path).name, "vocab_size": vocab_size,
                "reference": "llama-cpp-python Llama(vocab_only=True).tokenize(special=True)"}
        f.write(json.dumps(head, ensure_ascii=False)[:-1] + ",\"cases\":[\n")
        for c, case in enumerate(cases):
            f.write(json.dumps(case, ensure_ascii=False, separators=(",", ":")))
            f.write(",\n" if c + 1 < len(cases) else "\n")
        f.write("]}\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", default=os.path.expanduser(
        "~/.cache/tokenswift/models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--vocab-size", type=int, default=4096)
    ap.add_argument("--nfc-vocab-size", type=int, default=1024)
    args = ap.parse_args()
    from tokenizers import Tokenizer

    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "varied.txt").write_bytes(VARIED.encode("utf-8"))
    src = read_gguf_vocab(args.gguf)
    hparams = src.pop("hparams")
    bpe = truncate(src, args.vocab_size)
    bpe.update(model="gpt2", pre="smollm", scores=[], add_bos=False, add_space_prefix=False)

    golden = {"hf": [], "gguf": []}
    # (a) HF tokenizer.json files.
    nfc_bpe = truncate(src, args.nfc_vocab_size)
    for flavour, string_merges, nfc in (("smollm", True, False), ("llama3", False, False),
                                        ("qwen2", False, False), ("qwen2", False, True)):
        name = f"{flavour}_nfc_tokenizer.json" if nfc else f"{flavour}_tokenizer.json"
        data = build_hf(nfc_bpe if nfc else bpe, flavour, string_merges, nfc=nfc)
        with open(OUT / name, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=None, separators=(",", ":"))
        hf = Tokenizer.from_file(str(OUT / name))

        def hf_encode(raw, add_special, hf=hf):
            return hf.encode(raw.decode("utf-8", errors="replace"),
                             add_special_tokens=add_special).ids
        golden["hf"].append({"file": name, "cases": cases_for(
            hf_encode, VARIED, [("invalid_utf8", INVALID_AGREE)],
            NFC_CASES if nfc else ())})

    # (b) GGUF vocabularies through llama.cpp.
    dump_json(OUT / "gguf_gpt2_vocab.json", vocab_json(bpe))
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = pathlib.Path(tmpdir)
        spm_vocab = train_spm(tmp)
        dump_json(OUT / "gguf_llama_spm_vocab.json", vocab_json(spm_vocab))
        variants = [("gguf_gpt2_vocab.json", dict(bpe, pre=p, add_bos=(p == "llama-bpe")))
                    for p in ("smollm", "gpt-2", "llama-bpe", "qwen2")]
        variants.append(("gguf_llama_spm_vocab.json", spm_vocab))
        for vocab_file, v in variants:
            path = tmp / f"{v['model']}-{v['pre']}.gguf"
            write_gguf(path, hparams, v)
            encode, llm = llama_encode(path)
            golden["gguf"].append({
                "vocab": vocab_file, "pre": v["pre"], "add_bos": v["add_bos"],
                "cases": cases_for(encode, VARIED, [("invalid_utf8", INVALID_AGREE),
                                                    ("invalid_truncated", INVALID_TRUNCATED)])})
            del llm

    write_real_vocab_ids(args.gguf, len(src["tokens"]))

    with open(OUT / "golden_ids.json", "w", encoding="utf-8") as f:
        f.write("{\"hf\":[\n")
        for s, section in enumerate(("hf", "gguf")):
            if s:
                f.write("],\"gguf\":[\n")
            entries = golden[section]
            for e, entry in enumerate(entries):
                head = {k: v for k, v in entry.items() if k != "cases"}
                f.write(json.dumps(head, ensure_ascii=False)[:-1] + ",\"cases\":[\n")
                for c, case in enumerate(entry["cases"]):
                    f.write(json.dumps(case, ensure_ascii=False, separators=(",", ":")))
                    f.write(",\n" if c + 1 < len(entry["cases"]) else "\n")
                f.write("]}" + (",\n" if e + 1 < len(entries) else "\n"))
        f.write("]}\n")
    json.load(open(OUT / "golden_ids.json"))  # well-formed
    for p in sorted(OUT.iterdir()):
        print(f"{p.stat().st_size:>9}  {p.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
