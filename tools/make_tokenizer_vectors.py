#!/usr/bin/env python3
"""Writes the expected token ids of the multilingual tokenizer test set.

Input:  tests/data/tokenizer/multilingual.txt (format in its header: one
        labelled string per line, with escapes for invisible characters,
        raw bytes and long runs).
Output: tests/data/tokenizer/<vocab>.expected, one line per test string (in
        the input's order) of space-separated token ids, tokenized with no
        BOS/EOS added and special-token parsing off; an empty line when a
        string gives no tokens.

Vocabularies: the eight in shared/data/vocab (ggml-vocab-<vocab>.gguf),
SmolLM2-135M-Instruct (smollm2.expected), llama.cpp's own vocabulary files
from the llama-cpp-python sdist (tools/fetch-peer-vocabs.sh; PEER_VOCABS
below, among them gpt-neox, aquila and baichuan, which come without vectors),
and GPT-2's vocabulary with its pre-tokenizer swapped for another one
(PRE_VARIANTS: "gpt-2+bloom" is GPT-2's tokens and merges split by BLOOM's
pre-tokenizer), which tests pre-tokenizers no vocabulary file here uses.

References, independent of ember:
  * every vocabulary but bert-bge: llama.cpp, through the PyPI package
    llama-cpp-python (`llama_cpp`, vocab_only=True, llama_tokenize with
    add_special=False, parse_special=False);
  * Unigram ("t5") vocabularies (ugm-tiny, nomic-bert-moe): llama.cpp, cross-
    checked against Google's SentencePiece (PyPI `sentencepiece` and `protobuf`)
    on a model rebuilt from the GGUF; the script prints where they disagree
    (ugm-tiny: long.emoji, a run of unknown characters);
  * bert-bge: Hugging Face `tokenizers` (BertNormalizer + BertPreTokenizer +
    WordPiece, lower-casing and accent stripping as the GGUF says), with the
    vocab.txt rebuilt from the GGUF token list (GGUF writes word-initial
    pieces as "\u2581piece" and continuation pieces bare, vocab.txt as
    "piece" and "##piece"). llama.cpp's WordPiece departs from BERT's on
    spacing and enclosing marks (Mc, Me: it strips them as accents), on
    Hangul (it does not decompose syllables) and on words over 100
    characters (BERT makes them [UNK]); ember follows BERT there. The script
    prints the strings where the two references disagree. Known limit:
    `tokenizers` takes its character categories from an old Unicode version
    (before 9.0), ember from Unicode 15, so marks and punctuation assigned
    since (U+0C3C, U+2E4E, ...) can differ; the test set holds none.
    `tokenizers` takes only valid Unicode text: for the strings that are not
    valid UTF-8 the reference is llama.cpp (which, like ember, decodes bytes
    leniently: an overlong "\xC0\xAF" is "/").

Usage:
  tools/make_tokenizer_vectors.py [--data DIR] [--peer DIR] [--smollm2 GGUF] [--out DIR]
  tools/make_tokenizer_vectors.py --check   # regenerate and compare; exit 1 on a difference

DIR defaults to $EMBER_TEST_DATA or ../shared/data beside the checkout; the
peer DIR to $EMBER_PEER_VOCAB or .cache/peer-vocab/llama-cpp-python-0.3.36; GGUF to
$EMBER_SMOLLM2_GGUF. A vocabulary whose file is missing is reported, and with
--check counts as a failure.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SET_DIR = ROOT / "tests" / "data" / "tokenizer"
INPUT = SET_DIR / "multilingual.txt"

VOCABS = ["llama-spm", "phi-3", "gpt-2", "deepseek-llm", "falcon", "starcoder", "mpt", "bert-bge"]
PEER_VOCABS = [
    "llama-bpe",
    "qwen2",
    "qwen35",
    "command-r",
    "deepseek-coder",
    "refact",
    "gemma-4",
    "gpt-neox",
    "aquila",
    "baichuan",
    "nomic-bert-moe",
]
# Vocabularies committed in tests/data/tokenizer (tools/make_ugm_vocab.py).
LOCAL_VOCABS = ["ugm-tiny"]
# Pre-tokenizers (tokenizer.ggml.pre) run on GPT-2's vocabulary.
PRE_VARIANTS = ["bloom", "olmo", "tekken"]


# ---------------------------------------------------------------------------
# The test set


def unescape(text: str, where: str) -> bytes:
    """The bytes a line's text stands for (escapes in the input's header)."""
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c != "\\":
            out += c.encode("utf-8")
            i += 1
            continue
        if i + 1 >= len(text):
            raise ValueError(f"{where}: a lone backslash ends the line")
        e = text[i + 1]
        simple = {"n": b"\n", "r": b"\r", "t": b"\t", "\\": b"\\"}
        if e in simple:
            out += simple[e]
            i += 2
            continue
        if e in "uxR":
            if i + 2 >= len(text) or text[i + 2] != "{":
                raise ValueError(f"{where}: \\{e} needs braces")
            close = text.find("}", i + 3)
            if close < 0:
                raise ValueError(f"{where}: unclosed \\{e}{{")
            body = text[i + 3 : close]
            if e == "u":
                cp = int(body, 16)
                out += chr(cp).encode("utf-8", "surrogatepass")
            elif e == "x":
                b = int(body, 16)
                if not 0 <= b <= 255:
                    raise ValueError(f"{where}: \\x{{{body}}} is not a byte")
                out.append(b)
            else:
                count, sep, inner = body.partition(":")
                if not sep or not count.isdigit():
                    raise ValueError(f"{where}: \\R{{{body}}} should be \\R{{N:TEXT}}")
                out += unescape(inner, where) * int(count)
            i = close + 1
            continue
        raise ValueError(f"{where}: unknown escape \\{e}")
    return bytes(out)


def read_set(path: Path = INPUT) -> list[tuple[str, bytes]]:
    cases: list[tuple[str, bytes]] = []
    labels: set[str] = set()
    with open(path, "rb") as f:
        raw = f.read()
    if b"\r" in raw:
        raise ValueError(f"{path}: holds a carriage return; write \\r")
    for n, line in enumerate(raw.decode("utf-8").split("\n"), 1):
        where = f"{path.name}:{n}"
        if not line or line.startswith("#"):
            continue
        if line != line.rstrip(" \t\u00a0\u3000"):
            raise ValueError(f"{where}: ends in white space; write it as \\u{{20}}")
        if "\t" in line:
            raise ValueError(f"{where}: holds a tab; write \\t")
        label, _, text = line.partition(" ")
        if label in labels:
            raise ValueError(f"{where}: label {label} used twice")
        labels.add(label)
        cases.append((label, unescape(text, where)))
    return cases


# ---------------------------------------------------------------------------
# References


class LlamaCpp:
    """llama.cpp's tokenizer for one GGUF file (vocabulary only)."""

    def __init__(self, path: str):
        import llama_cpp

        self.lib = llama_cpp
        self.llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
        self.vocab = self.llm._model.vocab

    def tokenize(self, text: bytes, add_special: bool = False, parse_special: bool = False) -> list[int]:
        n = len(text) + 16
        buf = (self.lib.llama_token * n)()
        got = self.lib.llama_tokenize(self.vocab, text, len(text), buf, n, add_special, parse_special)
        if got < 0:
            n = -got
            buf = (self.lib.llama_token * n)()
            got = self.lib.llama_tokenize(self.vocab, text, len(text), buf, n, add_special, parse_special)
            if got < 0:
                raise RuntimeError("llama_tokenize failed")
        return list(buf[:got])


def gguf_tokenizer_fields(path: str) -> dict:
    import gguf

    reader = gguf.GGUFReader(path)
    fields = {}
    for key, field in reader.fields.items():
        if key.startswith("tokenizer.ggml."):
            if key == "tokenizer.ggml.tokens":
                fields[key] = [bytes(field.parts[i]).decode("utf-8") for i in field.data]
            elif key in ("tokenizer.ggml.token_type", "tokenizer.ggml.scores", "tokenizer.ggml.merges"):
                continue
            else:
                fields[key] = field.contents()
    return fields


class HfBert:
    """Hugging Face's BERT WordPiece over a GGUF (WordPiece) vocabulary."""

    def __init__(self, path: str):
        from tokenizers import Tokenizer, normalizers, pre_tokenizers
        from tokenizers.models import WordPiece

        fields = gguf_tokenizer_fields(path)
        tokens = fields["tokenizer.ggml.tokens"]
        vocab: dict[str, int] = {}
        for i, t in enumerate(tokens):
            # Undo convert_hf_to_gguf.py's "phantom space" spelling.
            if t.startswith("\u2581"):
                piece = t[1:]
            elif t.startswith("[") and t.endswith("]"):
                piece = t
            else:
                piece = "##" + t
            vocab.setdefault(piece, i)
        lowercase = bool(fields.get("tokenizer.ggml.normalizer.lowercase", True))
        strip_accents = bool(fields.get("tokenizer.ggml.normalizer.strip_accents", lowercase))
        unk = tokens[int(fields.get("tokenizer.ggml.unknown_token_id", 100))]
        tok = Tokenizer(WordPiece(vocab, unk_token=unk, continuing_subword_prefix="##", max_input_chars_per_word=100))
        tok.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True, strip_accents=strip_accents, lowercase=lowercase
        )
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        self.tok = tok

    def tokenize(self, text: bytes) -> list[int]:
        return self.tok.encode(text.decode("utf-8"), add_special_tokens=False).ids


class SentencePiece:
    """Google's SentencePiece over a Unigram ("t5") GGUF vocabulary: the model
    rebuilt from the GGUF's pieces, scores, types and precompiled character map."""

    def __init__(self, path: str):
        import gguf
        import sentencepiece as spm
        from sentencepiece import sentencepiece_model_pb2 as pb

        reader = gguf.GGUFReader(path)
        f = reader.fields
        proto = pb.ModelProto()
        for text, score, kind in zip(
            f["tokenizer.ggml.tokens"].contents(),
            f["tokenizer.ggml.scores"].contents(),
            f["tokenizer.ggml.token_type"].contents(),
        ):
            piece = proto.pieces.add()
            piece.piece, piece.score, piece.type = text, score, kind
        proto.trainer_spec.model_type = pb.TrainerSpec.UNIGRAM
        proto.trainer_spec.unk_id = int(f["tokenizer.ggml.unknown_token_id"].contents())
        norm = proto.normalizer_spec
        norm.name = "precompiled"
        norm.precompiled_charsmap = bytes(f["tokenizer.ggml.precompiled_charsmap"].contents())
        norm.add_dummy_prefix = bool(f["tokenizer.ggml.add_space_prefix"].contents())
        norm.remove_extra_whitespaces = bool(f["tokenizer.ggml.remove_extra_whitespaces"].contents())
        norm.escape_whitespaces = True
        self.sp = spm.SentencePieceProcessor(model_proto=proto.SerializeToString())

    def tokenize(self, text: bytes) -> list[int]:
        return self.sp.encode(text.decode("utf-8"))


def with_pre(source: str, pre: str, out_dir: str) -> str:
    """A copy of a vocabulary-only GGUF file whose tokenizer.ggml.pre is `pre`."""
    import gguf

    reader = gguf.GGUFReader(source)
    arch = reader.fields["general.architecture"].contents()
    path = os.path.join(out_dir, f"{Path(source).stem}+{pre}.gguf")
    writer = gguf.GGUFWriter(path, arch)
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key in ("general.architecture", "tokenizer.ggml.pre"):
            continue
        vtype = field.types[0]
        sub_type = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), vtype, sub_type)
    writer.add_string("tokenizer.ggml.pre", pre)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def valid_utf8(text: bytes) -> bool:
    try:
        text.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def vocab_paths(data: Path, peer: Path, smollm2: str | None, tmp: str) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for name in VOCABS:
        p = data / "vocab" / f"ggml-vocab-{name}.gguf"
        out.append((name, str(p) if p.exists() else None))
    out.append(("smollm2", smollm2 if smollm2 and os.path.exists(smollm2) else None))
    for name in LOCAL_VOCABS:
        p = SET_DIR / f"{name}.gguf"
        out.append((name, str(p) if p.exists() else None))
    for name in PEER_VOCABS:
        p = peer / f"ggml-vocab-{name}.gguf"
        out.append((name, str(p) if p.exists() else None))
    gpt2 = data / "vocab" / "ggml-vocab-gpt-2.gguf"
    for pre in PRE_VARIANTS:
        out.append((f"gpt-2+{pre}", with_pre(str(gpt2), pre, tmp) if gpt2.exists() else None))
    return out


def expected_lines(name: str, path: str, cases: list[tuple[str, bytes]], verbose: bool) -> list[str]:
    if name == "bert-bge":
        hf = HfBert(path)
        cpp = LlamaCpp(path)
        ids = [hf.tokenize(text) if valid_utf8(text) else cpp.tokenize(text) for _, text in cases]
        if verbose:
            differ = [label for (label, text), want in zip(cases, ids) if cpp.tokenize(text) != want]
            print(f"  bert-bge: llama.cpp differs from Hugging Face on {len(differ)} strings: {' '.join(differ)}")
    else:
        cpp = LlamaCpp(path)
        ids = [cpp.tokenize(text) for _, text in cases]
        if verbose and name in ("ugm-tiny", "nomic-bert-moe"):
            sp = SentencePiece(path)
            differ = [label for (label, text), want in zip(cases, ids) if valid_utf8(text) and sp.tokenize(text) != want]
            n_valid = sum(valid_utf8(text) for _, text in cases)
            print(f"  {name}: SentencePiece agrees with llama.cpp on {n_valid - len(differ)}/{n_valid} valid UTF-8 strings")
            if differ:
                print(f"  {name}: they differ on: {' '.join(differ)}")
    return [" ".join(map(str, row)) for row in ids]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_data = os.environ.get("EMBER_TEST_DATA") or str(ROOT.parent / "shared" / "data")
    ap.add_argument("--data", default=default_data, help="shared test data folder (holds vocab/)")
    default_peer = os.environ.get("EMBER_PEER_VOCAB") or str(ROOT / ".cache" / "peer-vocab" / "llama-cpp-python-0.3.36")
    ap.add_argument("--peer", default=default_peer, help="llama.cpp's vocabulary files (tools/fetch-peer-vocabs.sh)")
    ap.add_argument("--smollm2", default=os.environ.get("EMBER_SMOLLM2_GGUF"), help="SmolLM2 GGUF file")
    ap.add_argument("--out", default=str(SET_DIR), help="where to write <vocab>.expected")
    ap.add_argument("--check", action="store_true", help="regenerate into a temporary folder and compare")
    args = ap.parse_args()

    cases = read_set()
    print(f"{len(cases)} test strings from {INPUT.relative_to(ROOT)}")
    missing = 0
    differences = 0
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as scratch:
        out_dir = Path(tmp) if args.check else Path(args.out)
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, path in vocab_paths(Path(args.data), Path(args.peer), args.smollm2, scratch):
            if path is None:
                print(f"  {name}: MISSING (vocabulary file not found)")
                missing += 1
                continue
            lines = expected_lines(name, path, cases, verbose=True)
            text = "\n".join(lines) + "\n"
            target = out_dir / f"{name}.expected"
            target.write_text(text, encoding="ascii")
            n_tokens = sum(len(line.split()) for line in lines)
            if args.check:
                committed = SET_DIR / f"{name}.expected"
                same = committed.exists() and committed.read_text(encoding="ascii") == text
                if not same:
                    differences += 1
                    old = committed.read_text(encoding="ascii").split("\n") if committed.exists() else []
                    bad = [label for k, (label, _) in enumerate(cases) if k >= len(old) or old[k] != lines[k]]
                    print(f"  {name}: DIFFERS from {committed.relative_to(ROOT)} on: {' '.join(bad) or '(length)'}")
                else:
                    print(f"  {name}: ok ({n_tokens} tokens)")
            else:
                print(f"  {name}: wrote {target} ({n_tokens} tokens)")
    if args.check and (differences or missing):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
