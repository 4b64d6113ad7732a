// Definitions of the Highway backend: per-target code, dispatch tables and the
// out-of-line members of ember::kernels::Highway.
//
// Include this in exactly one translation unit of the program. The umbrella
// headers do that for you in the TU that defines EMBER_IMPLEMENTATION. The
// members below are deliberately not `inline`: a second TU defining them is a
// multiple-definition error at link time, a missing one an undefined
// reference, instead of a silent wrong choice at run time.
//
// Highway's hwy/foreach_target.h runs once per TU (it has an include guard),
// so any other per-target code of ember must join this TU through
// highway-inl.hpp rather than start its own foreach_target.
#pragma once

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "ember/kernels/activation_buffer.hpp"
#include "ember/kernels/highway.hpp"
#include "ember/kernels/matrix.hpp"
#include "ember/kernels/reference.hpp"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#define EMBER_HAVE_CPUID 1
#endif
#if defined(EMBER_HAVE_CPUID) && defined(__x86_64__) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#define EMBER_HAVE_AMX_CHECK 1
#endif

// Which CPU targets get code. These take effect only if no Highway header was
// included earlier in this TU (Highway fixes its target list on first include).
// SSSE3/SSE4 are dropped: that cuts this TU's compile time by about 40%
// (12.7 s -> 7.7 s at -O2 here), CPUs with SSE4 but no AVX2 are rare among
// hosts that run LLMs, and they still get the scalar target.
// SVE and RVV are dropped because the kernels keep vectors in arrays, which
// their sizeless vector types forbid.
#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS (HWY_SSSE3 | HWY_SSE4 | HWY_SVE | HWY_SVE2 | HWY_SVE_256 | HWY_SVE2_128 | HWY_RVV)
#endif
// AVX3_DL (Ice Lake and later: VNNI, VBMI2, ...) is opt-in in Highway 1.0.3.
#ifndef HWY_WANT_AVX3_DL
#define HWY_WANT_AVX3_DL
#endif

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ember/kernels/highway-inl.hpp"
#include <hwy/foreach_target.h>  // must come before highway.h
#include <hwy/highway.h>

#include "ember/kernels/highway-inl.hpp"  // the static (baseline) target

#if HWY_ONCE
namespace ember::kernels {

HWY_EXPORT(Matmul);
HWY_EXPORT(Matmuls);
HWY_EXPORT(Dot);
HWY_EXPORT(Axpy);
HWY_EXPORT(Add);
HWY_EXPORT(Scale);
HWY_EXPORT(RmsNorm);
HWY_EXPORT(LayerNorm);
HWY_EXPORT(Softmax);
HWY_EXPORT(AttendF16);
HWY_EXPORT(AttendQ8);
HWY_EXPORT(SiluMul);
HWY_EXPORT(GeluMul);
HWY_EXPORT(TargetName);

namespace highway_detail {

inline bool has_vector_matmul(DType t) {
  switch (t) {
    case DType::F32:
    case DType::F16:
    case DType::BF16:
    case DType::Q8_0:
    case DType::Q4_0:
    case DType::Q4_1:
    case DType::Q5_0:
    case DType::Q5_1:
    case DType::Q2_K:
    case DType::Q3_K:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K: return true;
    default: return false;
  }
}

// Targets this CPU supports and this TU compiled, ignoring any test override.
// Highway has no query for that, so lift the override, ask, and put it back.
inline int64_t usable_targets() {
  const int64_t current = hwy::SupportedTargets();
  hwy::SetSupportedTargetsForTest(0);
  const int64_t real = hwy::SupportedTargets();
  if (current != real) hwy::SetSupportedTargetsForTest(current);
  return real & HWY_TARGETS;
}

// CPUID leaf 7, subleaf 0, ECX bit 11: AVX512_VNNI. The AVX-512 register
// state it needs is the AVX3 target's, which Highway checks (with XCR0) before
// choosing that target; VNNI code runs only on the AVX3 targets.
inline bool cpu_has_avx512_vnni() {
#ifdef EMBER_HAVE_CPUID
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_max(0, nullptr) < 7) return false;
  __cpuid_count(7, 0, a, b, c, d);
  return (c >> 11) & 1;
#else
  return false;
#endif
}

inline bool vnni_available() {
  static const bool available = cpu_has_avx512_vnni();
  return available;
}

inline std::atomic<bool>& vnni_switch() {
  static std::atomic<bool> enabled{true};
  return enabled;
}

// AMX for the int8 prefill kernels: the CPU reports AMX-TILE and AMX-INT8 (CPUID leaf 7,
// subleaf 0, EDX bits 24 and 25), the OS saves the tile state (OSXSAVE, then XCR0 bits 17
// and 18: XTILECFG, XTILEDATA), and Linux grants this process the tile data state
// (arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA), Linux 5.16 and later; without the
// grant the first tile instruction would kill the process with SIGILL). Asked once, at the
// first use; the grant is process-wide and covers threads started before it. Elsewhere
// (other OSes, other CPUs) false: the VNNI kernels run.
inline bool cpu_allows_amx() {
#if defined(EMBER_AMX_EMULATE) && EMBER_AMX_EMULATE
  return true;  // tests: the tile instructions are emulated (amx_x86-inl.hpp)
#elif defined(EMBER_HAVE_AMX_CHECK)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_max(0, nullptr) < 7) return false;
  __cpuid(1, a, b, c, d);
  if (!((c >> 27) & 1)) return false;  // OSXSAVE: xgetbv is there
  __cpuid_count(7, 0, a, b, c, d);
  if (!((d >> 24) & 1) || !((d >> 25) & 1)) return false;
  uint32_t xcr0_lo = 0, xcr0_hi = 0;
  asm volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  if ((xcr0_lo & (3u << 17)) != (3u << 17)) return false;
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

inline bool amx_available() {
  static const bool available = cpu_allows_amx();
  return available;
}

inline std::atomic<bool>& amx_switch() {
  static std::atomic<bool> enabled{true};
  return enabled;
}

// EMBER_DISABLE, read once at the first matmul: a comma-separated list of CPU features ember
// must not use, for tests and comparisons — "avx512" (Highway's AVX3 targets), "avx2" (the
// AVX2 target; with avx512 too, that leaves the scalar target), "vnni" (and with it AMX,
// whose kernels are part of the VNNI ones), "amx". Other names are ignored. A feature the CPU
// or OS does not offer is never used anyway: Highway checks CPUID and XCR0, VNNI and AMX are
// checked above.
inline bool apply_disable_env() {
  const char* env = std::getenv("EMBER_DISABLE");
  if (!env) return false;
  const std::string_view list(env);
  auto listed = [&](std::string_view name) {
    for (size_t at = 0; at <= list.size();) {
      const size_t comma = std::min(list.find(',', at), list.size());
      if (list.substr(at, comma - at) == name) return true;
      at = comma + 1;
    }
    return false;
  };
  int64_t targets = 0;
  if (listed("avx512")) targets |= HWY_AVX3 | HWY_AVX3_DL;
  if (listed("avx2")) targets |= HWY_AVX2;
  if (targets) hwy::DisableTargets(targets);
  if (listed("vnni")) vnni_switch().store(false);
  if (listed("amx")) amx_switch().store(false);
  return true;
}

}  // namespace highway_detail

bool Highway::vnni_available() { return highway_detail::vnni_available(); }

void Highway::set_vnni_enabled(bool enabled) { highway_detail::vnni_switch().store(enabled); }

bool Highway::vnni_enabled() {
  return highway_detail::vnni_available() && highway_detail::vnni_switch().load(std::memory_order_relaxed);
}

bool Highway::amx_available() { return highway_detail::amx_available(); }

void Highway::set_amx_enabled(bool enabled) { highway_detail::amx_switch().store(enabled); }

bool Highway::amx_enabled() {
  return vnni_enabled() && highway_detail::amx_available() &&
         highway_detail::amx_switch().load(std::memory_order_relaxed);
}

bool Highway::packs(DType t) {
#if HWY_ARCH_X86
  // Q4_K's and Q6_K's x16 kernels need AVX-512 VNNI; without it the copy would only cost memory.
  return t == DType::Q4_0 || t == DType::Q4_1 || t == DType::Q8_0 ||
         ((t == DType::Q4_K || t == DType::Q6_K) && highway_detail::vnni_available());
#else
  (void)t;
  return false;
#endif
}

bool Highway::supports(DType t) { return highway_detail::has_vector_matmul(t) || Reference::supports(t); }

void Highway::matmul(const MatrixView& w, const float* x, size_t x_stride, size_t n_tok, float* y, size_t y_stride,
                     size_t r_begin, size_t r_end) {
  static const bool env_applied = highway_detail::apply_disable_env();
  (void)env_applied;
  assert(r_begin <= r_end && r_end <= w.n_row);
  assert(w.n_col % block_size(w.dtype) == 0);
  if (!highway_detail::has_vector_matmul(w.dtype)) {
    Reference::matmul(w, x, x_stride, n_tok, y, y_stride, r_begin, r_end);
    return;
  }
  const size_t tokens = n_tok < detail::kTokenChunk ? n_tok : detail::kTokenChunk;
  std::byte* scratch = detail::thread_scratch(tokens * detail::planar_row_bytes(w.dtype, w.n_col));
  HWY_DYNAMIC_DISPATCH(Matmul)
  (w, x, x_stride, n_tok, y, y_stride, r_begin, r_end, scratch, vnni_enabled(), n_tok >= 16 && amx_enabled());
}

void Highway::matmuls(const MatmulPart* parts, size_t n_part, const float* x, size_t x_stride, size_t n_tok) {
  static const bool env_applied = highway_detail::apply_disable_env();
  (void)env_applied;
  size_t bytes = 0;
  for (size_t i = 0; i < n_part; ++i) {
    const MatrixView& w = *parts[i].w;
    assert(parts[i].r_begin <= parts[i].r_end && parts[i].r_end <= w.n_row && w.n_col == parts[0].w->n_col);
    if (!highway_detail::has_vector_matmul(w.dtype)) {  // each on its own (Reference's path among them)
      for (size_t j = 0; j < n_part; ++j)
        matmul(*parts[j].w, x, x_stride, n_tok, parts[j].y, parts[j].y_stride, parts[j].r_begin, parts[j].r_end);
      return;
    }
    bytes = std::max(bytes, detail::planar_row_bytes(w.dtype, w.n_col));
  }
  if (n_part == 0) return;
  const size_t tokens = n_tok < detail::kTokenChunk ? n_tok : detail::kTokenChunk;
  std::byte* scratch = detail::thread_scratch(tokens * bytes);
  HWY_DYNAMIC_DISPATCH(Matmuls)
  (parts, n_part, x, x_stride, n_tok, scratch, vnni_enabled(), n_tok >= 16 && amx_enabled());
}

float Highway::dot(const float* a, const float* b, size_t n) { return HWY_DYNAMIC_DISPATCH(Dot)(a, b, n); }

void Highway::axpy(float a, const float* x, float* y, size_t n) { HWY_DYNAMIC_DISPATCH(Axpy)(a, x, y, n); }

void Highway::add(float* y, const float* x, size_t n) { HWY_DYNAMIC_DISPATCH(Add)(y, x, n); }

void Highway::scale(float* x, float s, size_t n) { HWY_DYNAMIC_DISPATCH(Scale)(x, s, n); }

void Highway::rmsnorm(const float* x, const float* weight, float* out, size_t n, float eps) {
  HWY_DYNAMIC_DISPATCH(RmsNorm)(x, weight, out, n, eps);
}

void Highway::layernorm(const float* x, const float* weight, const float* bias, float* out, size_t n, float eps) {
  HWY_DYNAMIC_DISPATCH(LayerNorm)(x, weight, bias, out, n, eps);
}

void Highway::softmax(float* x, size_t n) { HWY_DYNAMIC_DISPATCH(Softmax)(x, n); }

bool Highway::attend(const KeyTilesF16& keys, const MatrixView& values_t, const float* q, size_t group, float scale,
                     float* scores, float* out, float* lse) {
  return HWY_DYNAMIC_DISPATCH(AttendF16)(keys, values_t, q, group, scale, scores, out, lse);
}

bool Highway::attend_q8(const KeyTiles& keys, const MatrixView& values, const float* q, size_t group, float scale,
                        float* scores, float* out, float* lse) {
  return HWY_DYNAMIC_DISPATCH(AttendQ8)(keys, values, q, group, scale, scores, out, lse, vnni_enabled());
}

void Highway::silu_mul(float* gate, const float* up, size_t n) { HWY_DYNAMIC_DISPATCH(SiluMul)(gate, up, n); }

void Highway::gelu(float* x, size_t n) { HWY_DYNAMIC_DISPATCH(GeluMul)(x, nullptr, n); }

void Highway::gelu_mul(float* gate, const float* up, size_t n) { HWY_DYNAMIC_DISPATCH(GeluMul)(gate, up, n); }

// RoPE stays scalar: one cos/sin per pair serves every head, the rotation
// itself is a sliver of a layer's time, and sharing the oracle's code keeps
// the angles bit-identical to llama.cpp's.
void Highway::rope(float* x, size_t n_head, size_t head_dim, size_t n_rot, int32_t pos, float freq_base) {
  Reference::rope(x, n_head, head_dim, n_rot, pos, freq_base);
}

void Highway::rope_neox(float* x, size_t n_head, size_t head_dim, size_t n_rot, int32_t pos, float freq_base) {
  Reference::rope_neox(x, n_head, head_dim, n_rot, pos, freq_base);
}

std::vector<std::string> Highway::available_targets() {
  std::vector<std::string> names;
  // Lowest bit first: Highway orders targets best first.
  for (int64_t bits = highway_detail::usable_targets(); bits != 0; bits &= bits - 1) {
    names.emplace_back(hwy::TargetName(bits & -bits));
  }
  return names;
}

bool Highway::force_target(std::string_view target) {
  for (int64_t bits = highway_detail::usable_targets(); bits != 0; bits &= bits - 1) {
    const int64_t t = bits & -bits;
    if (target == hwy::TargetName(t)) {
      hwy::SetSupportedTargetsForTest(t);
      return true;
    }
  }
  return false;
}

void Highway::reset_target() { hwy::SetSupportedTargetsForTest(0); }

const char* Highway::current_target() { return HWY_DYNAMIC_DISPATCH(TargetName)(); }

}  // namespace ember::kernels
#endif  // HWY_ONCE
