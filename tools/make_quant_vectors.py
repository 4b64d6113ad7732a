#!/usr/bin/env python3
"""Writes the quantization test vectors in tests/data/quant/.

The expected outputs come from the PyPI `gguf` package's numpy code
(gguf.quants.quantize / dequantize), the reference ember's scalar
quantize.hpp / dequantize.hpp must match bit for bit (tests/test_quant.cpp).

File format: headerless raw little-endian bytes, two files per case.

    <type>.dequant.in    n / block_size blocks of <type>, exactly as in GGUF
    <type>.dequant.out   float32[n]: gguf.quants.dequantize(<type>.dequant.in)
    <type>.quant.in      float32[n]
    <type>.quant.out     blocks of <type>: gguf.quants.quantize(<type>.quant.in)

<type> is the lower-case GGML type name (f32, f16, bf16, q4_0, ..., q8_k).
n is not stored: it is the size of the float32 file divided by 4, and the
block file must then hold n / block_size * block_bytes bytes.

gguf has no numpy code for Q8_1 and Q8_K. q8_1.dequant.out and
q8_k.dequant.out are computed here as ggml's dequantize does (float32 d * q);
Q8_1 quantization has no vector file (the C++ test checks it against Q8_0).
gguf's size table gives Q8_1 40 bytes per block, an old layout; ggml's is 36.

Inputs come from numpy's seeded PCG64 generator, one stream per file, so the
files are reproducible byte for byte: `--check` regenerates them into a
temporary folder and compares with the checked-in files (exit status 1 on a
difference).

What the inputs cover: scales of both signs, zero, -0, f16 subnormals; for
quantization a zero block, one huge value, a negative maximum, tiny blocks
(d an f16 subnormal, d rounding to 0, 1 / d overflowing), constant blocks,
rounding ties, a scale overflowing f16, and for Q4_0 / Q5_0 a block whose
quants change if `x * id + offset` is fused into an FMA. The float formats'
inputs include infinities, quiet NaNs and rounding ties. Left out on purpose:
signalling NaNs (numpy's software half conversion keeps them signalling where
F16C hardware and ember quiet them) and mixed-sign zeros in one block
(numpy's SIMD min/max may return either zero).

Usage: tools/make_quant_vectors.py [--out DIR] [--check]
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
import warnings
import zlib
from pathlib import Path

import numpy as np

import gguf
from gguf import GGMLQuantizationType as Q
from gguf import quants

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "tests" / "data" / "quant"

# Elements per case: 32 legacy blocks, 4 K-quant super-blocks.
N_ELEMENTS = 1024

DEQUANT_TYPES = [Q.F32, Q.F16, Q.BF16, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0, Q.Q8_1,
                 Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K, Q.Q8_K]
QUANT_TYPES = [Q.F16, Q.BF16, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0]


def block_geometry(qtype: Q) -> tuple[int, int]:
    """(elements, bytes) per block. gguf 0.19 still lists Q8_1 at 40 bytes (two
    float32 scales, ggml's layout before 2024); ggml and GGUF files use two f16
    scales: 36 bytes."""
    if qtype == Q.Q8_1:
        return 32, 36
    return gguf.GGML_QUANT_SIZES[qtype]


def rng_for(name: str) -> np.random.Generator:
    # One stream per file: adding a case does not change the others.
    return np.random.default_rng(zlib.crc32(name.encode()))


def f16_bits(values) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.asarray(values, dtype=np.float32).astype(np.float16).view(np.uint16)


def scale_f16(rng: np.random.Generator, n: int) -> np.ndarray:
    """n >= 4 f16 scale bit patterns of moderate magnitude and both signs.
    Scale 1 is negative, 2 is zero, 3 the smallest subnormal; longer runs also
    get -0, the largest subnormal and a large value (250) further on."""
    magnitudes = 10.0 ** rng.uniform(-4.0, 0.0, size=n)
    signs = np.where(rng.random(n) < 0.25, -1.0, 1.0)
    bits = f16_bits(signs * magnitudes)
    bits[1] |= 0x8000
    specials = {2: 0x0000, 3: 0x0001, 5: 0x8000, 7: 0x03FF, 9: 0x5BD0}
    for i, s in specials.items():
        if i < n:
            bits[i] = s
    return bits


def quiet_f16_patterns(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random f16 bit patterns (all classes), signalling NaNs made quiet."""
    bits = rng.integers(0, 1 << 16, size=n, dtype=np.uint32).astype(np.uint16)
    is_nan = ((bits & 0x7C00) == 0x7C00) & ((bits & 0x03FF) != 0)
    return np.where(is_nan, bits | 0x0200, bits).astype(np.uint16)


def raw_blocks(qtype: Q, rng: np.random.Generator) -> bytes:
    """N_ELEMENTS worth of blocks of qtype with random quants and sane scales."""
    block_size, type_size = block_geometry(qtype)
    n_blocks = N_ELEMENTS // block_size
    data = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)

    def put_f16(offset: int, bits: np.ndarray) -> None:
        data[:, offset:offset + 2] = bits.astype("<u2").reshape(n_blocks, 1).view(np.uint8)

    if qtype in (Q.Q4_0, Q.Q5_0, Q.Q8_0):
        put_f16(0, scale_f16(rng, n_blocks))
    elif qtype in (Q.Q4_1, Q.Q5_1):
        put_f16(0, scale_f16(rng, n_blocks))
        put_f16(2, f16_bits(rng.normal(0.0, 0.5, size=n_blocks)))
    elif qtype == Q.Q8_1:
        put_f16(0, scale_f16(rng, n_blocks))
        put_f16(2, f16_bits(rng.normal(0.0, 4.0, size=n_blocks)))  # s is not read
    elif qtype == Q.Q2_K:  # scales[16] qs[64] d dmin
        put_f16(80, scale_f16(rng, n_blocks))
        put_f16(82, scale_f16(rng, n_blocks)[::-1].copy())
    elif qtype == Q.Q3_K:  # hmask[32] qs[64] scales[12] d
        put_f16(108, scale_f16(rng, n_blocks))
    elif qtype in (Q.Q4_K, Q.Q5_K):  # d dmin scales[12] ...
        put_f16(0, scale_f16(rng, n_blocks))
        put_f16(2, scale_f16(rng, n_blocks)[::-1].copy())
    elif qtype == Q.Q6_K:  # ql[128] qh[64] scales[16] d
        put_f16(208, scale_f16(rng, n_blocks))
    elif qtype == Q.Q8_K:  # float d, int8 qs[256], int16 bsums[16]
        d = (10.0 ** rng.uniform(-6.0, -1.0, size=n_blocks)).astype(np.float32)
        d[1] = -d[1]
        d[2] = 0.0
        d[3] = np.float32(1e-40)  # float32 subnormal
        data[:, 0:4] = d.astype("<f4").reshape(n_blocks, 1).view(np.uint8)
        q = data[:, 4:260].view(np.int8).astype(np.int16)
        bsums = q.reshape(n_blocks, 16, 16).sum(axis=-1).astype("<i2")
        data[:, 260:292] = bsums.view(np.uint8)
    else:
        raise ValueError(qtype.name)
    return data.tobytes()


def float_values(rng: np.random.Generator) -> np.ndarray:
    """Float32 data of every class for the plain float formats."""
    n = N_ELEMENTS
    magnitudes = 2.0 ** rng.uniform(-30.0, 30.0, size=n)
    x = (np.where(rng.random(n) < 0.5, -1.0, 1.0) * magnitudes).astype(np.float32)
    bits = x.view(np.uint32)
    specials = np.array([
        0x00000000, 0x80000000, 0x7F800000, 0xFF800000,  # zeros, infinities
        0x00000001, 0x807FFFFF, 0x7F7FFFFF, 0xFF7FFFFF,  # f32 subnormals, f32 max
        0x7FC00000, 0xFFC12345,                          # quiet NaNs, with payload
        0x477FE000, 0x477FEFFF, 0x477FF000, 0x47800000,  # 65504, around f16 overflow
        0x33000000, 0x33000001, 0x387FC000, 0x38800000,  # f16 subnormal / normal edges
        0x3F801000, 0x3F803000, 0x3F808000, 0x3F818000,  # f16 and bf16 ties to even
        0x7F7F8000, 0x3F800001,                          # bf16 rounds to inf, rounds down
    ], dtype=np.uint32)
    bits[:len(specials)] = specials
    # Random ties and near-ties for both halves' rounding.
    k = np.arange(len(specials), n, 7)
    bits[k] = (bits[k] & np.uint32(0xFFFF0000)) | np.uint32(0x8000)
    bits[k + 1] = (bits[k + 1] & np.uint32(0xFFFFE000)) | np.uint32(0x1000)
    return x


def fma_sensitive_block(offset: float, max_q: int) -> np.ndarray:
    """A Q4_0 / Q5_0 block (offset 8.5 / 16.5) whose quants change if
    `x * id + offset` is computed with one rounding (an FMA) instead of numpy's
    two: values whose product lies within half an ulp of `m - offset`."""
    f32 = np.float32
    top = f32(3.0)
    d = top / f32(-(max_q + 1) // 2)
    inverse = f32(1.0) / d
    found = []
    for m in range(1, max_q + 1):
        start = f32((m - offset) / float(inverse))
        below, above = start, start
        candidates = [start]
        for _ in range(300):
            below = np.nextafter(below, f32(-np.inf))
            above = np.nextafter(above, f32(np.inf))
            candidates += [below, above]
        for x in candidates:
            if not -top < x < top:
                continue
            two_roundings = np.trunc(f32(f32(x * inverse) + f32(offset)))
            one_rounding = np.trunc(f32(np.float64(x) * np.float64(inverse) + offset))
            if two_roundings != one_rounding:
                found.append(x)
                break
    assert found, "no FMA-sensitive value found"
    block = np.resize(np.array(found, dtype=np.float32), 32)
    block[0] = top
    return block


def quant_input(rng: np.random.Generator, qtype: Q) -> np.ndarray:
    """32 blocks of 32: edge cases first, then Gaussian data at many scales."""
    b = rng.normal(0.0, 1.0, size=(N_ELEMENTS // 32, 32)).astype(np.float32)
    b[0] = 0.0                                        # all zeros
    b[1, 7] = 3000.0                                  # one huge value
    b[2, 20] = -9.0                                   # the maximum is negative
    b[3] *= np.float32(1e-6)                          # d is an f16 subnormal
    b[4] *= np.float32(1e-30)                         # d rounds to f16 zero
    b[5] = 0.75                                       # constant: max == min
    b[6] = -2.5                                       # constant, negative
    b[7, 3], b[7, 9] = -4.0, 4.0                      # |max| tie: first wins
    b[8] = np.arange(-16, 16, dtype=np.float32) + 0.5  # quants on rounding ties
    b[8, 0] = -127.0                                  # Q8_0: d = 1, x * id = k + 0.5
    b[9] += np.float32(10.0)                          # offset: Q4_1 min far from 0
    b[10, 0] = np.float32(1e6)                        # d overflows f16 to inf
    b[11] = np.abs(b[11])                             # all positive
    b[12] = -np.abs(b[12])                            # all negative
    b[13, 0] = np.float32(1e-38)                      # leading tiny value
    b[13, 1:] = np.float32(2e-38)                     # 1 / d overflows: quants 0
    scales = 10.0 ** rng.uniform(-3.0, 2.0, size=N_ELEMENTS // 32 - 14)
    b[14:] *= scales.astype(np.float32).reshape(-1, 1)
    if qtype == Q.Q4_0:
        b[14] = fma_sensitive_block(8.5, 15)
    elif qtype == Q.Q5_0:
        b[14] = fma_sensitive_block(16.5, 31)
    return b.reshape(-1)


def dequant_expected(qtype: Q, raw: bytes) -> np.ndarray:
    data = np.frombuffer(raw, dtype=np.uint8)
    if qtype in (Q.Q8_1, Q.Q8_K):
        # Not in gguf: ggml's dequantize_row_q8_K / Q8_1 by definition, d * q.
        block_size, type_size = block_geometry(qtype)
        blocks = data.reshape(-1, type_size)
        if qtype == Q.Q8_K:
            d = blocks[:, 0:4].copy().view("<f4").astype(np.float32)
            q = blocks[:, 4:260].copy().view(np.int8).astype(np.float32)
        else:
            d = blocks[:, 0:2].copy().view("<f2").astype(np.float32)
            q = blocks[:, 4:36].copy().view(np.int8).astype(np.float32)
        return (d * q).reshape(-1).astype(np.float32)
    return quants.dequantize(data.reshape(1, -1), qtype).reshape(-1).astype(np.float32, copy=False)


def quant_expected(qtype: Q, x: np.ndarray) -> bytes:
    # Overflow to an f16 infinity is part of the test (inputs beyond 65520,
    # block 10's d): silence numpy's warning about it.
    with np.errstate(over="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return quants.quantize(x.reshape(1, -1), qtype).tobytes()


def generate(out: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for qtype in DEQUANT_TYPES:
        name = qtype.name.lower()
        rng = rng_for(name + ".dequant")
        if qtype == Q.F32:
            raw = float_values(rng).astype("<f4").tobytes()
        elif qtype == Q.F16:
            raw = quiet_f16_patterns(rng, N_ELEMENTS).astype("<u2").tobytes()
        elif qtype == Q.BF16:
            raw = rng.integers(0, 1 << 16, size=N_ELEMENTS, dtype=np.uint32).astype("<u2").tobytes()
        else:
            raw = raw_blocks(qtype, rng)
        expected = dequant_expected(qtype, raw)
        assert expected.dtype == np.float32 and expected.size == N_ELEMENTS, name
        files[f"{name}.dequant.in"] = raw
        files[f"{name}.dequant.out"] = expected.astype("<f4").tobytes()
    for qtype in QUANT_TYPES:
        name = qtype.name.lower()
        rng = rng_for(name + ".quant")
        x = float_values(rng) if qtype in (Q.F16, Q.BF16) else quant_input(rng, qtype)
        block_size, type_size = block_geometry(qtype)
        expected = quant_expected(qtype, x)
        assert len(expected) == x.size // block_size * type_size, name
        files[f"{name}.quant.in"] = x.astype("<f4").tobytes()
        files[f"{name}.quant.out"] = expected
    out.mkdir(parents=True, exist_ok=True)
    for file_name, content in files.items():
        (out / file_name).write_bytes(content)
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument("--check", action="store_true",
                        help="regenerate into a temporary folder and compare with --out")
    args = parser.parse_args()
    if not args.check:
        files = generate(args.out)
        total = sum(len(c) for c in files.values())
        print(f"wrote {len(files)} files, {total} bytes, to {args.out}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        files = generate(Path(tmp))
        names = sorted(files)
        _, mismatch, errors = filecmp.cmpfiles(tmp, args.out, names, shallow=False)
        extra = sorted(p.name for p in args.out.glob("*") if p.name not in files)
    for name in mismatch:
        print(f"differs: {name}")
    for name in errors:
        print(f"missing: {name}")
    for name in extra:
        print(f"not generated by this script: {name}")
    if mismatch or errors or extra:
        return 1
    print(f"{len(names)} files match")
    return 0


if __name__ == "__main__":
    sys.exit(main())
