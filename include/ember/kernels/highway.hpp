// The runtime-dispatched SIMD backend, built on Google Highway.
//
// This header is SIMD-free on purpose: it only declares. The definitions live
// in highway_impl.hpp, which one translation unit of the host compiles by
// defining EMBER_IMPLEMENTATION before including <ember/ember.hpp> (or
// <ember/kernels/kernels.hpp>). Forgetting that gives undefined references to
// ember::kernels::Highway::*, doing it in two TUs gives multiple definitions:
// both at link time. The host links libhwy (-lhwy).
//
// Same interface and conventions as Reference (reference.hpp), including
// ggml's matmul semantics (activations quantized to the weight format's
// activation type, integer block dot products). Matmul has vector code for
// F32, F16, BF16, Q8_0, Q4_0 and Q4_1 weights, and on x86 for Q5_0, Q5_1 and the
// K-quants (Q2_K .. Q6_K) too, with int8 dot products (AVX2, or AVX-512 VNNI
// where the CPU has it); elsewhere Q5_x and the K-quants run Reference's matmul. The
// K-quant kernels give Reference's results bit for bit. Per output, the
// arithmetic is a fixed sequence for a given CPU target, so results never
// depend on how rows or tokens were split. Matmul converts activations into a per-thread scratch
// buffer (activation_buffer.hpp) that grows to the largest call's need and is
// then reused: no allocation in steady state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ember/kernels/key_tiles.hpp"
#include "ember/kernels/matrix.hpp"

namespace ember::kernels {

struct Highway {
  static constexpr const char* name = "highway";

  static bool supports(DType t);
  // Formats whose matmul reads MatrixView::packed (kernels/packed.hpp) when it is set: Q4_0,
  // Q4_1 and Q8_0 on x86, and Q4_K and Q6_K where the CPU has AVX-512 VNNI (the AVX2 and AVX-512 targets; the others
  // read `data`).
  static bool packs(DType t);
  static void matmul(const MatrixView& w, const float* x, size_t x_stride, size_t n_tok, float* y, size_t y_stride,
                     size_t r_begin, size_t r_end);
  // matmul of several matrices with the same n_col against the same tokens, each its own
  // rows into its own outputs (MatmulPart): the activations are quantized once for all of
  // them where their formats agree (a Session's Q, K and V; gate and up). matmul's bits.
  static void matmuls(const MatmulPart* parts, size_t n_part, const float* x, size_t x_stride, size_t n_tok);
  static float dot(const float* a, const float* b, size_t n);
  static void axpy(float a, const float* x, float* y, size_t n);
  static void add(float* y, const float* x, size_t n);
  static void scale(float* x, float s, size_t n);
  static void rmsnorm(const float* x, const float* weight, float* out, size_t n, float eps);
  static void layernorm(const float* x, const float* weight, const float* bias, float* out, size_t n, float eps);
  static void softmax(float* x, size_t n);
  // Attention of `group` query heads over an F16 cache's key tiles and transposed values
  // (head_dim, n_pos), scores scaled by `scale`: what attend_group's matmul path computes
  // (f16-rounded queries and probabilities), in one pass per product. False, with nothing
  // written, where it does not apply (head_dim not a multiple of the vector lanes or above
  // 256, more than 16 heads per group, the scalar target).
  // Scratch: `scores` holds group * n_pos floats. `lse`, where not null, gets each head's
  // log-sum-exp of its scaled scores, max + log(sum of exp(score - max)): what
  // attention/attention.hpp needs to merge the outputs of position ranges computed apart.
  static bool attend(const KeyTilesF16& keys, const MatrixView& values_t, const float* q, size_t group, float scale,
                     float* scores, float* out, float* lse = nullptr);
  // The same over a Q8_0 cache: key tiles and q8_0 value rows (n_pos, head_dim); the
  // queries quantized to q8_0 as the matmul path's are. vpdpbusd with AVX-512 VNNI, maddubs
  // on AVX2 and AVX3 without it. False, with nothing written, on the scalar target (and off
  // x86), for head_dim above 512 or groups above 16.
  static bool attend_q8(const KeyTiles& keys, const MatrixView& values, const float* q, size_t group, float scale,
                        float* scores, float* out, float* lse = nullptr);
  static void silu_mul(float* gate, const float* up, size_t n);
  static void gelu(float* x, size_t n);
  static void gelu_mul(float* gate, const float* up, size_t n);
  static void rope(float* x, size_t n_head, size_t head_dim, size_t n_rot, int32_t pos, float freq_base);
  static void rope_neox(float* x, size_t n_head, size_t head_dim, size_t n_rot, int32_t pos, float freq_base);

  // Target control, for tests and benchmarks. These change Highway's
  // process-wide choice, so call them only while no kernel runs elsewhere.
  //
  // Targets compiled into this program that this CPU can run, best first,
  // by Highway's names ("AVX3_DL", "AVX3", "AVX2", "SCALAR", ...).
  static std::vector<std::string> available_targets();
  // Makes every later call use `target`; false (and no change) if it is not
  // one of available_targets().
  static bool force_target(std::string_view target);
  // Back to the best target for this CPU.
  static void reset_target();
  // The target the next call will run on.
  static const char* current_target();

  // AVX-512 VNNI for the int8 dot products of the AVX3 and AVX3_DL targets
  // (Highway's AVX3 target does not imply it: Skylake-X lacks it, Cascade Lake
  // has it). Available when the CPU reports AVX512_VNNI; used when available
  // and enabled (the default). Tests disable it to cover the AVX2-style int8
  // path on those targets. Process-wide, like force_target.
  static bool vnni_available();
  static void set_vnni_enabled(bool enabled);
  static bool vnni_enabled();  // available and enabled

  // AMX-INT8 tiles for the prefill of Q4_0, Q4_1, Q8_0 and Q4_K weights (16 tokens and more per
  // matmul; amx_x86-inl.hpp), with the VNNI kernels' bits. Available when the CPU reports
  // AMX-TILE and AMX-INT8, the OS saves the tile state and Linux grants it to this process
  // (asked at the first call); used when available, enabled (the default) and VNNI is
  // enabled too (EMBER_DISABLE=amx or =vnni turns it off). Process-wide, like force_target.
  static bool amx_available();
  static void set_amx_enabled(bool enabled);
  static bool amx_enabled();  // available, enabled, and VNNI enabled
};

}  // namespace ember::kernels
