#!/usr/bin/env python3
"""Writes the K-quant quantization vectors in tests/data/quant/, quantized by llama.cpp.

ember's Q4_K / Q5_K / Q6_K quantizers (include/ember/quant/quantize.hpp) port
ggml's quantize_row_{q4,q5,q6}_K_ref; tests/test_quant.cpp checks that they
give these files' bytes exactly. The expected bytes do not come from a second
port: this script writes the input floats as a tiny F32 llama GGUF, has
llama.cpp quantize it with its own quantizer (llama_model_quantize, the
library call behind the llama-quantize tool, no importance matrix) and copies
the quantized tensors out of the result.

    kquant.llamacpp.in   float32[1280]: 5 rows of 256, the input
    q4_k.llamacpp.out    5 Q4_K super-blocks: blk.0.attn_q.weight of ftype Q4_K_M
    q5_k.llamacpp.out    5 Q5_K super-blocks: blk.0.attn_q.weight of ftype Q5_K_M
    q6_k.llamacpp.out    5 Q6_K super-blocks: blk.0.attn_v.weight of ftype Q4_K_M

Headerless little-endian bytes, as tools/make_quant_vectors.py's files. In a
one-layer model, llama.cpp's Q4_K_M / Q5_K_M recipes give attn_q the ftype's
base type and attn_v Q6_K (use_more_bits holds for the last eighth of the
layers); the script checks the types it gets.

The rows mix realistic data with the cases where the search's branches
differ: per-group scales spread over 1e-3..1e2, make_tinyllama's uniform
weights, all-positive, constant, zero and half-zero groups, an outlier,
heavy tails, rounding-tie bait (multiples of 1/8, small integers), groups
under ggml's 1e-15 "all zero" threshold next to normal ones, groups whose
scale rounds to 0 against a large neighbour, and a row under the threshold
throughout (Q6_K's zero super-block). Nothing whose f16 scale would
overflow: llama.cpp rejects such output.

Requires numpy, the PyPI `gguf` package and llama-cpp-python (which builds
llama.cpp; written with llama-cpp-python 0.3.36). Inputs come from numpy's
seeded PCG64 generator, so reruns give the same files; `--check` regenerates
into a temporary folder and compares (exit status 1 on a difference).

Usage: tools/make_kquant_vectors.py [--out DIR] [--check]
"""

from __future__ import annotations

import argparse
import ctypes
import filecmp
import sys
import tempfile
from pathlib import Path

import numpy as np

import gguf
import llama_cpp

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "tests" / "data" / "quant"

ROW = 256  # one K-quant super-block per row
SEED = 0x4B5155  # "KQU"


def group_cases(rng: np.random.Generator) -> list[np.ndarray]:
    """Sixteen groups of 32 (two rows) of special cases."""
    def g(scale: float = 1.0) -> np.ndarray:
        return (scale * rng.standard_normal(32)).astype(np.float32)

    outlier = g(0.01)
    outlier[13] = 50.0
    half_zero = g(1.0)
    half_zero[:16] = 0.0
    return [
        # Row 2: one case per group of 32.
        np.abs(g(0.3)),                                   # all positive: the min clamps to 0
        np.full(32, -0.75, np.float32),                   # constant negative: max == min
        np.zeros(32, np.float32),                         # zero group among others
        outlier,                                          # one outlier among small values
        g(0.5) ** 3,                                      # heavy tails
        g(1e-20),                                         # below ggml's 1e-15 threshold
        half_zero,                                        # half of a group zero (a Q6_K group)
        np.where(np.arange(32) % 2 == 0, 1.0, -1.0).astype(np.float32),  # alternating signs
        # Row 3: scales far apart in one super-block, and ties.
        (np.round(g(4.0)) / 8).astype(np.float32),        # multiples of 1/8: rounding ties
        np.arange(32, dtype=np.float32),                  # integers 0..31
        (np.arange(32) % 16 - 8).astype(np.float32),      # integers -8..7
        np.full(32, 1.5, np.float32),                     # constant positive
        g(0.5) + 3.0,                                     # offset up
        g(0.5) - 3.0,                                     # offset down
        g(1e-6),                                          # tiny: its scale rounds to 0
        g(3e3),                                           # large neighbour
    ]


def input_rows() -> np.ndarray:
    rng = np.random.default_rng(SEED)
    # Row 0: Gaussian, the scale drawn per group of 32 from 1e-3..1e2.
    scales = np.repeat(10.0 ** rng.uniform(-3.0, 2.0, size=ROW // 32), 32)
    row0 = (scales * rng.standard_normal(ROW)).astype(np.float32)
    # Row 1: make_tinyllama's weights, uniform in +-0.05.
    row1 = (0.05 * rng.uniform(-1.0, 1.0, size=ROW)).astype(np.float32)
    cases = np.concatenate(group_cases(rng)).astype(np.float32)
    # Row 4: below the threshold everywhere.
    row4 = (1e-17 * rng.standard_normal(ROW)).astype(np.float32)
    x = np.concatenate([row0, row1, cases, row4]).astype(np.float32)
    assert x.size == 5 * ROW and np.all(np.isfinite(x))
    return x.reshape(-1, ROW)


def write_f32_model(path: Path, rows: np.ndarray) -> None:
    """A one-layer llama with only the two tensors the recipes are read for."""
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(64)
    w.add_embedding_length(ROW)
    w.add_block_count(1)
    w.add_feed_forward_length(ROW)
    w.add_head_count(1)
    w.add_head_count_kv(1)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(llama_cpp.LLAMA_FTYPE_ALL_F32)
    w.add_tensor("blk.0.attn_q.weight", rows)
    w.add_tensor("blk.0.attn_v.weight", rows)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@llama_cpp.llama_log_callback
def _quiet(level, text, user_data):  # llama.cpp logs every tensor to stderr
    pass


def llamacpp_quantize(f32_path: Path, out_path: Path, ftype: int) -> dict[str, tuple[str, bytes]]:
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = 1
    rc = llama_cpp.llama_model_quantize(str(f32_path).encode(), str(out_path).encode(), ctypes.byref(params))
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize returned {rc}")
    reader = gguf.GGUFReader(str(out_path))
    return {t.name: (t.tensor_type.name, bytes(t.data.tobytes())) for t in reader.tensors}


def tensor(tensors: dict[str, tuple[str, bytes]], name: str, want_type: str) -> bytes:
    got_type, data = tensors[name]
    if got_type != want_type:
        raise RuntimeError(f"llama.cpp quantized {name} to {got_type}, expected {want_type}")
    return data


def write_all(out: Path) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    rows = input_rows()
    llama_cpp.llama_log_set(_quiet, ctypes.c_void_p())
    with tempfile.TemporaryDirectory() as tmp:
        f32 = Path(tmp) / "f32.gguf"
        write_f32_model(f32, rows)
        q4_k_m = llamacpp_quantize(f32, Path(tmp) / "q4_k_m.gguf", llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M)
        q5_k_m = llamacpp_quantize(f32, Path(tmp) / "q5_k_m.gguf", llama_cpp.LLAMA_FTYPE_MOSTLY_Q5_K_M)
    files = {
        "kquant.llamacpp.in": rows.astype("<f4").tobytes(),
        "q4_k.llamacpp.out": tensor(q4_k_m, "blk.0.attn_q.weight", "Q4_K"),
        "q5_k.llamacpp.out": tensor(q5_k_m, "blk.0.attn_q.weight", "Q5_K"),
        "q6_k.llamacpp.out": tensor(q4_k_m, "blk.0.attn_v.weight", "Q6_K"),
    }
    for name, data in files.items():
        (out / name).write_bytes(data)
    return list(files)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--check", action="store_true", help="compare a fresh run with --out instead of writing")
    args = parser.parse_args()
    if not args.check:
        for name in write_all(args.out):
            print(args.out / name)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        names = write_all(Path(tmp))
        stale = [n for n in names if not (args.out / n).exists() or
                 not filecmp.cmp(Path(tmp) / n, args.out / n, shallow=False)]
    for name in stale:
        print(f"differs: {args.out / name}", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
