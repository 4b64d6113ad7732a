#!/usr/bin/env python3
"""`ember-cli tokenize` on the multilingual test set: each string, written to a file, gives
exactly the committed reference ids (tests/data/tokenizer/<vocab>.expected, made by
tools/make_tokenizer_vectors.py from llama.cpp / Hugging Face tokenizers).

Usage: cli_tokenize_test.py EMBER_CLI DATA_DIR [SMOLLM2_GGUF]
Runs one vocabulary of each family (SentencePiece llama-spm, byte-level BPE gpt-2, WordPiece
bert-bge from DATA_DIR/vocab, the committed Unigram ugm-tiny) and, if given, SmolLM2; the
in-process tokenizer tests run every vocabulary through the same code. Prints one line per
vocabulary; exit 1 on any difference.
"""
import subprocess
from concurrent.futures import ThreadPoolExecutor
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from make_tokenizer_vectors import read_set  # noqa: E402  (the set's own parser)

SET_DIR = ROOT / "tests" / "data" / "tokenizer"


def main() -> int:
    cli, data = sys.argv[1], Path(sys.argv[2])
    vocabs = [(v, data / "vocab" / f"ggml-vocab-{v}.gguf") for v in ("llama-spm", "gpt-2", "bert-bge")]
    vocabs.append(("ugm-tiny", SET_DIR / "ugm-tiny.gguf"))
    if len(sys.argv) > 3 and sys.argv[3]:
        vocabs.append(("smollm2", Path(sys.argv[3])))
    cases = read_set()
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, (_, text) in enumerate(cases):
            (Path(tmp) / f"{i}.txt").write_bytes(text)
        for name, path in vocabs:
            expected = (SET_DIR / f"{name}.expected").read_text().split("\n")
            def run(i):
                return subprocess.run([cli, "tokenize", "-m", str(path), "--no-bos", "--no-eos", "-f", f"{tmp}/{i}.txt"],
                                      capture_output=True, text=True)
            with ThreadPoolExecutor(max_workers=2) as pool:
                outs = list(pool.map(run, range(len(cases))))
            bad = [label for (label, _), out, want in zip(cases, outs, expected)
                   if out.returncode != 0 or out.stdout.rstrip("\n") != want]
            print(f"{'ok  ' if not bad else 'FAIL'} {name}: {len(cases) - len(bad)}/{len(cases)}"
                  + (f" (first: {', '.join(bad[:5])})" if bad else ""))
            failed += bool(bad)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
