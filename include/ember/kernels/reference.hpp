// The scalar oracle: every kernel written the obvious way, for tests to compare
// the SIMD backends against and for platforms without them.
//
// Conventions (shared by all backends, see matrix.hpp): `w` weights, `x`
// activations, `y` outputs; sizes are element counts, strides are in floats.
//
// Matmul follows ggml's CPU semantics so logits match llama.cpp's: activations
// are first converted to the weight format's activation type (Q8_0, Q8_1, Q8_K,
// f16 or bf16; quant/activations.hpp), then each block's dot product is an
// integer sum, scaled as ggml's generic C code does it (ggml-cpu/quants.c,
// ggml_vec_dot_*_generic): the float product of the two scales times the
// integer sum, plus the offset terms (m * s for Q4_1 / Q5_1, dmin * mins *
// bsums for the K-quants). Only the accumulation over blocks differs: the
// oracle sums the blocks' terms in double, in block order. Each term is an
// exact product in double (a float scale times an int), so the oracle is
// immune to FMA contraction, at least as accurate as ggml, and its result for
// one output never depends on how the caller split the work (rows, tokens,
// threads). Weights whose activations stay f32 (F32, Q8_1, Q8_K) are
// dequantized and summed in double.
// Elementwise ops use float math in the order ggml uses, so results stay close
// to llama.cpp's.
#pragma once

#include <cassert>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "ember/kernels/activation_buffer.hpp"
#include "ember/kernels/matrix.hpp"
#include "ember/quant/activations.hpp"
#include "ember/quant/quant.hpp"
#include "ember/tensor/dtype.hpp"

namespace ember::kernels {

struct Reference {
  static constexpr const char* name = "reference";

  // Whether matmul handles weights of this format (whatever quant:: can
  // dequantize). Loaders check this, so matmul itself never meets a bad format.
  static bool supports(DType t);

  // y[t * y_stride + r] = dot(row r of w, x + t * x_stride) for t in
  // [0, n_tok) and r in [r_begin, r_end), with ggml's semantics (top of this
  // file): the activations are converted once per call (per chunk of
  // detail::kTokenChunk tokens) into a per-thread scratch that is allocated
  // only when a thread first needs more. A format it does not support yields
  // NaN outputs (and asserts in debug builds): a programmer error.
  static void matmul(const MatrixView& w, const float* x, size_t x_stride, size_t n_tok, float* y, size_t y_stride,
                     size_t r_begin, size_t r_end);

  static float dot(const float* a, const float* b, size_t n);
  static void axpy(float a, const float* x, float* y, size_t n);  // y += a*x
  static void add(float* y, const float* x, size_t n);            // y += x
  static void scale(float* x, float s, size_t n);                 // x *= s
  // out = x / sqrt(mean(x^2) + eps) * weight; out may alias x.
  static void rmsnorm(const float* x, const float* weight, float* out, size_t n, float eps);
  // out = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias, as ggml_norm followed by
  // the weight and bias ops (BERT, GPT-2, BLOOM, StarCoder); weight and bias may be null
  // (taken as 1 and 0); out may alias x.
  static void layernorm(const float* x, const float* weight, const float* bias, float* out, size_t n, float eps);
  static void softmax(float* x, size_t n);                       // in place, max-subtracted
  static void silu_mul(float* gate, const float* up, size_t n);  // gate = silu(gate) * up
  // x = gelu(x), in place, by ggml_gelu's tanh approximation:
  // 0.5 x (1 + tanh(sqrt(2/pi) x (1 + 0.044715 x^2))).
  static void gelu(float* x, size_t n);
  static void gelu_mul(float* gate, const float* up, size_t n);  // gate = gelu(gate) * up (GEGLU)

  // Rotary embedding of n_head heads of head_dim floats, first n_rot dims of
  // each head rotated. GGML "normal" mode rotates adjacent pairs (2i, 2i+1);
  // NEOX mode rotates (i, i + n_rot/2). Angle of pair i: pos * base^(-2i/n_rot).
  static void rope(float* x, size_t n_head, size_t head_dim, size_t n_rot, int32_t pos, float freq_base);
  static void rope_neox(float* x, size_t n_head, size_t head_dim, size_t n_rot, int32_t pos, float freq_base);

  // One weight row against one token's activations already converted to
  // quant::activation_type(t) (row_bytes of that type at `act`, aligned for
  // its block type): ggml's vec_dot for the pair of formats, summed in double.
  // False for formats whose activations stay f32 or that it does not know.
  static bool dot_row(DType t, const void* row, const void* act, size_t n_col, double& out);

  // One row of matmul with f32 activations (dequantized weights, summed in
  // double) for up to kMaxTokens tokens: F32 weights and those whose
  // activations stay f32.
  static constexpr size_t kMaxTokens = 8;
  static bool matmul_row(DType t, const void* row, size_t n_col, const float* x, size_t x_stride, size_t n_tok,
                         float* y, size_t y_stride);

 private:
  template <bool kNeox>
  static void rope_impl(float* x, size_t n_head, size_t head_dim, size_t n_rot, int32_t pos, float freq_base);
};

inline bool Reference::supports(DType t) { return quant::can_dequantize(t); }

inline bool Reference::matmul_row(DType t, const void* row, size_t n_col, const float* x, size_t x_stride, size_t n_tok,
                                  float* y, size_t y_stride) {
  assert(n_tok <= kMaxTokens);
  // Dequantize a chunk at a time so the oracle needs no heap; 1024 is a
  // multiple of every block size (1, 32, 256).
  constexpr size_t kChunk = 1024;
  float buf[kChunk];
  double acc[kMaxTokens] = {};
  const auto* bytes = static_cast<const std::byte*>(row);
  for (size_t c0 = 0; c0 < n_col; c0 += kChunk) {
    const size_t nc = n_col - c0 < kChunk ? n_col - c0 : kChunk;
    if (!quant::dequantize_row(t, bytes + row_bytes(t, c0), buf, nc).ok()) {
      return false;
    }
    for (size_t k = 0; k < n_tok; ++k) {
      const float* xk = x + k * x_stride + c0;
      double s = acc[k];
      for (size_t j = 0; j < nc; ++j) s += double(buf[j]) * double(xk[j]);
      acc[k] = s;
    }
  }
  for (size_t k = 0; k < n_tok; ++k) y[k * y_stride] = float(acc[k]);
  return true;
}

namespace reference_detail {

// A block of type B from a weight row, which may sit at any byte address.
template <class B>
inline B load_block(const std::byte* p) {
  B b;
  std::memcpy(&b, p, sizeof(b));
  return b;
}

// The contribution of one block pair to a dot product, as ggml's generic
// vec_dot computes it before adding to its float sum. Every product here is
// exact in double: a float times an int of at most 27 bits, or two f16 values.
inline double dot_block(const quant::BlockQ4_0& w, const quant::BlockQ8_0& a) {
  int sumi = 0;
  for (size_t j = 0; j < 16; ++j) {
    sumi += ((w.qs[j] & 0x0f) - 8) * a.qs[j] + ((w.qs[j] >> 4) - 8) * a.qs[j + 16];
  }
  return double(f16_to_f32(w.d_f16) * f16_to_f32(a.d_f16)) * sumi;
}

inline double dot_block(const quant::BlockQ4_1& w, const quant::BlockQ8_1& a) {
  int sumi = 0;
  for (size_t j = 0; j < 16; ++j) sumi += (w.qs[j] & 0x0f) * a.qs[j] + (w.qs[j] >> 4) * a.qs[j + 16];
  return double(f16_to_f32(w.d_f16) * f16_to_f32(a.d_f16)) * sumi +
         double(f16_to_f32(w.m_f16)) * double(f16_to_f32(a.s_f16));
}

// The 32 fifth bits of a Q5 block, bit j for element j.
inline uint32_t high_bits(const uint8_t (&qh)[4]) {
  return uint32_t(qh[0]) | uint32_t(qh[1]) << 8 | uint32_t(qh[2]) << 16 | uint32_t(qh[3]) << 24;
}

inline double dot_block(const quant::BlockQ5_0& w, const quant::BlockQ8_0& a) {
  const uint32_t qh = high_bits(w.qh);
  int sumi = 0;
  for (size_t j = 0; j < 16; ++j) {
    const int q0 = ((w.qs[j] & 0x0f) | int((qh >> j) & 1) << 4) - 16;
    const int q1 = ((w.qs[j] >> 4) | int((qh >> (j + 16)) & 1) << 4) - 16;
    sumi += q0 * a.qs[j] + q1 * a.qs[j + 16];
  }
  return double(f16_to_f32(w.d_f16) * f16_to_f32(a.d_f16)) * sumi;
}

inline double dot_block(const quant::BlockQ5_1& w, const quant::BlockQ8_1& a) {
  const uint32_t qh = high_bits(w.qh);
  int sumi = 0;
  for (size_t j = 0; j < 16; ++j) {
    const int q0 = (w.qs[j] & 0x0f) | int((qh >> j) & 1) << 4;
    const int q1 = (w.qs[j] >> 4) | int((qh >> (j + 16)) & 1) << 4;
    sumi += q0 * a.qs[j] + q1 * a.qs[j + 16];
  }
  return double(f16_to_f32(w.d_f16) * f16_to_f32(a.d_f16)) * sumi +
         double(f16_to_f32(w.m_f16)) * double(f16_to_f32(a.s_f16));
}

inline double dot_block(const quant::BlockQ8_0& w, const quant::BlockQ8_0& a) {
  int sumi = 0;
  for (size_t j = 0; j < 32; ++j) sumi += w.qs[j] * a.qs[j];
  return double(f16_to_f32(w.d_f16) * f16_to_f32(a.d_f16)) * sumi;
}

// K-quants: element layouts as in quant/dequantize.hpp. ggml's generic code
// spreads the integer sum over 8 float lanes; the oracle keeps one exact sum.
inline double dot_block(const quant::BlockQ2_K& w, const quant::BlockQ8_K& a) {
  int summs = 0;
  for (size_t g = 0; g < 16; ++g) summs += a.bsums[g] * (w.scales[g] >> 4);
  int isum = 0;
  for (size_t h = 0; h < 2; ++h) {
    for (size_t s = 0; s < 4; ++s) {
      const int8_t* q8 = a.qs + 128 * h + 32 * s;
      const uint8_t* q2 = w.qs + 32 * h;
      for (size_t g = 0; g < 2; ++g) {
        int sum = 0;
        for (size_t l = 16 * g; l < 16 * g + 16; ++l) sum += q8[l] * ((q2[l] >> (2 * s)) & 3);
        isum += (w.scales[8 * h + 2 * s + g] & 0x0f) * sum;
      }
    }
  }
  const float dall = a.d * f16_to_f32(w.d_f16);
  const float dmin = a.d * f16_to_f32(w.dmin_f16);
  return double(dall) * isum - double(dmin) * summs;
}

inline double dot_block(const quant::BlockQ3_K& w, const quant::BlockQ8_K& a) {
  int isum = 0;
  for (size_t h = 0; h < 2; ++h) {
    for (size_t s = 0; s < 4; ++s) {
      const int8_t* q8 = a.qs + 128 * h + 32 * s;
      const uint8_t* q3 = w.qs + 32 * h;
      for (size_t g = 0; g < 2; ++g) {
        int sum = 0;
        for (size_t l = 16 * g; l < 16 * g + 16; ++l) {
          const int low = (q3[l] >> (2 * s)) & 3;
          const int high = (w.hmask[l] >> (4 * h + s)) & 1;
          sum += q8[l] * (low - (high ? 0 : 4));
        }
        isum += quant::unpack_scale_q3_k(w.scales, int(8 * h + 2 * s + g)) * sum;
      }
    }
  }
  return double(f16_to_f32(w.d_f16) * a.d) * isum;
}

// Q4_K and Q5_K: 8 groups of 32, element 32 * group + l in nibble (group % 2)
// of qs[32 * (group / 2) + l]; Q5_K's fifth bit is bit `group` of qh[l].
template <class B>
inline double dot_block_k4(const B& w, const quant::BlockQ8_K& a) {
  int isum = 0, summs = 0;
  for (int group = 0; group < 8; ++group) {
    uint8_t scale, min;
    quant::unpack_scale_min_k4(w.scales, group, scale, min);
    const int8_t* q8 = a.qs + 32 * group;
    const uint8_t* q4 = w.qs + 32 * (group / 2);
    int sum = 0;
    for (int l = 0; l < 32; ++l) {
      int q = (q4[l] >> (4 * (group % 2))) & 0x0f;
      if constexpr (std::is_same_v<B, quant::BlockQ5_K>) q |= ((w.qh[l] >> group) & 1) << 4;
      sum += q8[l] * q;
    }
    isum += scale * sum;
    summs += min * (a.bsums[2 * group] + a.bsums[2 * group + 1]);
  }
  const float d = f16_to_f32(w.d_f16) * a.d;
  const float dmin = f16_to_f32(w.dmin_f16) * a.d;
  return double(d) * isum - double(dmin) * summs;
}

inline double dot_block(const quant::BlockQ4_K& w, const quant::BlockQ8_K& a) { return dot_block_k4(w, a); }
inline double dot_block(const quant::BlockQ5_K& w, const quant::BlockQ8_K& a) { return dot_block_k4(w, a); }

inline double dot_block(const quant::BlockQ6_K& w, const quant::BlockQ8_K& a) {
  int isum = 0;
  for (size_t h = 0; h < 2; ++h) {
    for (size_t t = 0; t < 4; ++t) {
      const int8_t* q8 = a.qs + 128 * h + 32 * t;
      const uint8_t* ql = w.ql + 64 * h + 32 * (t % 2);
      const uint8_t* qh = w.qh + 32 * h;
      for (size_t g = 0; g < 2; ++g) {
        int sum = 0;
        for (size_t l = 16 * g; l < 16 * g + 16; ++l) {
          const int low = (ql[l] >> (4 * (t / 2))) & 0x0f;
          const int high = (qh[l] >> (2 * t)) & 3;
          sum += q8[l] * ((low | high << 4) - 32);
        }
        isum += w.scales[8 * h + 2 * t + g] * sum;
      }
    }
  }
  return double(f16_to_f32(w.d_f16) * a.d) * isum;
}

// Sum over the blocks of a row, in block order.
template <class W, class A>
inline double dot_blocks(const void* row, const void* act, size_t n_block) {
  const auto* w = static_cast<const std::byte*>(row);
  const auto* a = static_cast<const A*>(act);
  double sum = 0;
  for (size_t b = 0; b < n_block; ++b) sum += dot_block(load_block<W>(w + b * sizeof(W)), a[b]);
  return sum;
}

// f16 / bf16 weights times activations rounded to the same type: each product
// is exact in float, as in ggml_vec_dot_f16 / _bf16.
template <float (*kToFloat)(uint16_t)>
inline double dot_halves(const void* row, const void* act, size_t n) {
  const auto* w = static_cast<const std::byte*>(row);
  const auto* a = static_cast<const uint16_t*>(act);
  double sum = 0;
  for (size_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, w + 2 * i, sizeof(h));
    sum += double(kToFloat(h)) * double(kToFloat(a[i]));
  }
  return sum;
}

}  // namespace reference_detail

inline bool Reference::dot_row(DType t, const void* row, const void* act, size_t n_col, double& out) {
  using namespace quant;
  using reference_detail::dot_blocks;
  const size_t n32 = n_col / 32, n256 = n_col / 256;
  switch (t) {
    case DType::F16: out = reference_detail::dot_halves<f16_to_f32>(row, act, n_col); return true;
    case DType::BF16: out = reference_detail::dot_halves<bf16_to_f32>(row, act, n_col); return true;
    case DType::Q4_0: out = dot_blocks<BlockQ4_0, BlockQ8_0>(row, act, n32); return true;
    case DType::Q4_1: out = dot_blocks<BlockQ4_1, BlockQ8_1>(row, act, n32); return true;
    case DType::Q5_0: out = dot_blocks<BlockQ5_0, BlockQ8_0>(row, act, n32); return true;
    case DType::Q5_1: out = dot_blocks<BlockQ5_1, BlockQ8_1>(row, act, n32); return true;
    case DType::Q8_0: out = dot_blocks<BlockQ8_0, BlockQ8_0>(row, act, n32); return true;
    case DType::Q2_K: out = dot_blocks<BlockQ2_K, BlockQ8_K>(row, act, n256); return true;
    case DType::Q3_K: out = dot_blocks<BlockQ3_K, BlockQ8_K>(row, act, n256); return true;
    case DType::Q4_K: out = dot_blocks<BlockQ4_K, BlockQ8_K>(row, act, n256); return true;
    case DType::Q5_K: out = dot_blocks<BlockQ5_K, BlockQ8_K>(row, act, n256); return true;
    case DType::Q6_K: out = dot_blocks<BlockQ6_K, BlockQ8_K>(row, act, n256); return true;
    default: return false;
  }
}

inline void Reference::matmul(const MatrixView& w, const float* x, size_t x_stride, size_t n_tok, float* y,
                              size_t y_stride, size_t r_begin, size_t r_end) {
  assert(r_begin <= r_end && r_end <= w.n_row);
  assert(w.n_col % block_size(w.dtype) == 0);
  const DType act = quant::activation_type(w.dtype);
  if (act != DType::F32 && r_begin < r_end) {
    // Convert each token's activations once per chunk of tokens, then take
    // every row's dot products with them.
    const size_t act_bytes = detail::round_up(row_bytes(act, w.n_col), 64);
    for (size_t t0 = 0; t0 < n_tok; t0 += detail::kTokenChunk) {
      const size_t nt = n_tok - t0 < detail::kTokenChunk ? n_tok - t0 : detail::kTokenChunk;
      std::byte* buf = detail::thread_scratch(nt * act_bytes);
      for (size_t k = 0; k < nt; ++k) {
        quant::quantize_activations(act, x + (t0 + k) * x_stride, buf + k * act_bytes, w.n_col);
      }
      for (size_t r = r_begin; r < r_end; ++r) {
        for (size_t k = 0; k < nt; ++k) {
          double sum = 0;
          const bool ok = dot_row(w.dtype, w.row(r), buf + k * act_bytes, w.n_col, sum);
          assert(ok && "Reference::matmul: weight format not supported");
          y[(t0 + k) * y_stride + r] = ok ? float(sum) : std::numeric_limits<float>::quiet_NaN();
        }
      }
    }
    return;
  }
  if (act != DType::F32) return;  // no rows
  for (size_t r = r_begin; r < r_end; ++r) {
    for (size_t t0 = 0; t0 < n_tok; t0 += kMaxTokens) {
      const size_t nt = n_tok - t0 < kMaxTokens ? n_tok - t0 : kMaxTokens;
      if (!matmul_row(w.dtype, w.row(r), w.n_col, x + t0 * x_stride, x_stride, nt, y + t0 * y_stride + r, y_stride)) {
        assert(false && "Reference::matmul: weight format not supported");
        for (size_t k = 0; k < nt; ++k) {
          y[(t0 + k) * y_stride + r] = std::numeric_limits<float>::quiet_NaN();
        }
      }
    }
  }
}

inline float Reference::dot(const float* a, const float* b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += double(a[i]) * double(b[i]);
  return float(s);
}

inline void Reference::axpy(float a, const float* x, float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] += a * x[i];
}

inline void Reference::add(float* y, const float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] += x[i];
}

inline void Reference::scale(float* x, float s, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] *= s;
}

inline void Reference::rmsnorm(const float* x, const float* weight, float* out, size_t n, float eps) {
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += double(x[i]) * double(x[i]);
  const float mean = float(sum / double(n));
  const float s = 1.0f / std::sqrt(mean + eps);  // as ggml_rms_norm
  for (size_t i = 0; i < n; ++i) out[i] = x[i] * s * weight[i];
}

inline void Reference::layernorm(const float* x, const float* weight, const float* bias, float* out, size_t n,
                                 float eps) {
  if (n == 0) return;
  // Both sums in double, in two passes, as ggml_compute_forward_norm_f32.
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += double(x[i]);
  const float mean = float(sum / double(n));
  double sum2 = 0;
  for (size_t i = 0; i < n; ++i) sum2 += double(x[i] - mean) * double(x[i] - mean);
  const float s = 1.0f / std::sqrt(float(sum2 / double(n)) + eps);
  for (size_t i = 0; i < n; ++i) {
    float v = (x[i] - mean) * s;
    if (weight) v *= weight[i];
    if (bias) v += bias[i];
    out[i] = v;
  }
}

inline void Reference::softmax(float* x, size_t n) {
  if (n == 0) return;
  float max = x[0];
  for (size_t i = 1; i < n; ++i) max = x[i] > max ? x[i] : max;
  double sum = 0;
  for (size_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  const float inv = float(1.0 / sum);
  for (size_t i = 0; i < n; ++i) x[i] *= inv;
}

inline void Reference::silu_mul(float* gate, const float* up, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const float g = gate[i];
    gate[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

namespace reference_detail {
// The tanh approximation evaluated in double, so the vector backends are measured against
// the formula rather than against another float approximation of it. 1 + tanh(u) is taken
// as the equal 2 / (1 + exp(-2u)): it has no cancellation where tanh(u) is near -1.
inline float gelu(float x) {
  const double v = x;
  constexpr double kSqrt2OverPi = 0.79788456080286535588, kCoef = 0.044715;
  const double u = kSqrt2OverPi * v * (1.0 + kCoef * v * v);
  return float(v / (1.0 + std::exp(-2.0 * u)));
}
}  // namespace reference_detail

inline void Reference::gelu(float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] = reference_detail::gelu(x[i]);
}

inline void Reference::gelu_mul(float* gate, const float* up, size_t n) {
  for (size_t i = 0; i < n; ++i) gate[i] = reference_detail::gelu(gate[i]) * up[i];
}

template <bool kNeox>
inline void Reference::rope_impl(float* x, size_t n_head, size_t head_dim, size_t n_rot, int32_t pos, float freq_base) {
  assert(n_rot % 2 == 0 && n_rot <= head_dim);
  // As ggml_rope_cache_init: the angle advances by repeated float
  // multiplication, not pow per pair, so angles match llama.cpp's bit for bit.
  const float theta_scale = std::pow(freq_base, -2.0f / float(n_rot));
  const size_t half = n_rot / 2;
  float theta = float(pos);
  for (size_t i = 0; i < half; ++i) {
    // Every head shares the angle: one cos/sin per pair, not per head.
    const float c = std::cos(theta);
    const float s = std::sin(theta);
    const size_t i0 = kNeox ? i : 2 * i;
    const size_t i1 = kNeox ? i + half : 2 * i + 1;
    for (size_t h = 0; h < n_head; ++h) {
      float* v = x + h * head_dim;
      const float x0 = v[i0];
      const float x1 = v[i1];
      v[i0] = x0 * c - x1 * s;
      v[i1] = x0 * s + x1 * c;
    }
    theta *= theta_scale;
  }
}

inline void Reference::rope(float* x, size_t n_head, size_t head_dim, size_t n_rot, int32_t pos, float freq_base) {
  rope_impl<false>(x, n_head, head_dim, n_rot, pos, freq_base);
}

inline void Reference::rope_neox(float* x, size_t n_head, size_t head_dim, size_t n_rot, int32_t pos, float freq_base) {
  rope_impl<true>(x, n_head, head_dim, n_rot, pos, freq_base);
}

}  // namespace ember::kernels
