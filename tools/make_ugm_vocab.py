#!/usr/bin/env python3
"""Writes tests/data/tokenizer/ugm-tiny.gguf, a small Unigram ("t5") vocabulary.

No small real T5-style vocabulary ships on PyPI in a form we can use without
pulling model weights, so this script trains one with Google's SentencePiece
(PyPI `sentencepiece`, model_type=unigram, its default nmt_nfkc normalization,
so the GGUF carries a real precompiled character map) on the valid-UTF-8
strings of tests/data/tokenizer/multilingual.txt, and writes it as a
vocabulary-only GGUF file the way llama.cpp's convert_hf_to_gguf.py writes T5
vocabularies (tokens, scores, token types, tokenizer.ggml.precompiled_charsmap,
add_space_prefix, remove_extra_whitespaces, special ids) with the PyPI `gguf`
package. A user-defined symbol ("<tag>") and a control symbol ("<ctl>") are
included to exercise those paths; character_coverage below 1 leaves rare
characters out, so unknown tokens occur.

The expected ids (ugm-tiny.expected) are written by
tools/make_tokenizer_vectors.py, like every other vocabulary's: llama.cpp's
through llama-cpp-python, cross-checked against SentencePiece itself.

The real, large Unigram vocabulary tested is llama.cpp's
ggml-vocab-nomic-bert-moe.gguf (XLM-RoBERTa's SentencePiece model), from
tools/fetch-peer-vocabs.sh.

Usage: tools/make_ugm_vocab.py [--out GGUF]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_tokenizer_vectors as vectors  # noqa: E402


def train(corpus: list[str], prefix: str) -> str:
    import sentencepiece as spm

    path = prefix + ".txt"
    with open(path, "w", encoding="utf-8") as f:
        for line in corpus:
            f.write(line + "\n")
    spm.SentencePieceTrainer.train(
        input=path,
        model_prefix=prefix,
        model_type="unigram",
        vocab_size=1500,
        hard_vocab_limit=False,
        character_coverage=0.98,
        num_threads=1,
        user_defined_symbols=["<tag>"],
        control_symbols=["<ctl>"],
        unk_id=2,
        bos_id=-1,
        eos_id=1,
        pad_id=0,
        minloglevel=2,
    )
    return prefix + ".model"


def write_gguf(model_path: str, out: str) -> None:
    import gguf
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    with open(model_path, "rb") as f:
        proto.ParseFromString(f.read())
    tokens = [p.piece.encode("utf-8") for p in proto.pieces]
    scores = [p.score for p in proto.pieces]
    types = [int(p.type) for p in proto.pieces]  # SentencePiece's numbering is GGUF's
    norm = proto.normalizer_spec
    writer = gguf.GGUFWriter(out, "t5")
    writer.add_name("ember ugm-tiny (SentencePiece unigram trained on the multilingual test set)")
    writer.add_tokenizer_model("t5")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_add_space_prefix(norm.add_dummy_prefix)
    writer.add_remove_extra_whitespaces(norm.remove_extra_whitespaces)
    writer.add_precompiled_charsmap(norm.precompiled_charsmap)
    writer.add_unk_token_id(proto.trainer_spec.unk_id)
    writer.add_eos_token_id(proto.trainer_spec.eos_id)
    writer.add_pad_token_id(proto.trainer_spec.pad_id)
    writer.add_add_bos_token(False)
    writer.add_add_eos_token(True)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "tests" / "data" / "tokenizer" / "ugm-tiny.gguf"))
    args = ap.parse_args()
    corpus: list[str] = []
    for _, text in vectors.read_set():
        if vectors.valid_utf8(text):
            corpus += [line for line in text.decode("utf-8").split("\n") if line.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        model = train(corpus, os.path.join(tmp, "ugm-tiny"))
        write_gguf(model, args.out)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
