// The AMX tile kernels (kernels/amx_x86-inl.hpp) on a CPU without AMX: built with
// EMBER_AMX_EMULATE=1, their tile instructions run as scalar code with the same results, so
// the tile loops, the unpacking and the epilogues are checked here against the x16 VNNI
// kernels' bits (Highway::set_amx_enabled(false)) wherever the tests run. Only Highway's
// AVX3_DL target is compiled (the AMX kernels live in its VNNI copy; fewer targets keep this
// second Highway translation unit quick to build). Exits 0 with a note where the CPU lacks
// AVX-512 VNNI (then nothing can run the kernels), 1 on any difference.
//
// ember_tests' "AMX prefill gives the VNNI kernel's bits" runs the real instructions where
// the CPU and OS have AMX; this program covers the same code everywhere else.
#define EMBER_AMX_EMULATE 1
#define HWY_DISABLED_TARGETS (~(HWY_AVX3_DL | HWY_SCALAR | HWY_EMU128))
#define EMBER_IMPLEMENTATION
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "ember/core/rng.hpp"
#include "ember/kernels/kernels.hpp"
#include "ember/kernels/packed.hpp"
#include "ember/quant/quantize.hpp"

namespace {

using ember::DType;
using ember::kernels::Highway;
using ember::kernels::MatrixView;

// Uniform in [lo, hi), from a fixed seed and a running counter.
float uniform(float lo, float hi) {
  static uint64_t counter = 0;
  return lo + (hi - lo) * float(ember::uniform01(20261128, counter++));
}

}  // namespace

int main() {
  if (std::strcmp(Highway::current_target(), "AVX3_DL") != 0 || !Highway::vnni_available()) {
    std::printf("amx_emulated: no AVX3_DL target with VNNI here (%s): nothing to run\n", Highway::current_target());
    return 0;
  }
  int failures = 0;
  for (DType t : {DType::Q4_0, DType::Q4_1, DType::Q8_0, DType::Q4_K}) {
    const size_t n_row = 53, n_col = ember::block_size(t) == 256 ? 512 : 160;  // four groups, the last of 5
    // Random float weights quantized to t, then the x16 copy Model::load would make.
    std::vector<float> wf(n_row * n_col);
    for (float& v : wf) v = uniform(-1, 1);
    std::vector<unsigned char> w(n_row * ember::row_bytes(t, n_col));
    for (size_t r = 0; r < n_row; ++r)
      if (!ember::quant::quantize_row(t, wf.data() + r * n_col, w.data() + r * ember::row_bytes(t, n_col), n_col).ok())
        return 2;
    MatrixView view = ember::kernels::make_matrix_view(t, w.data(), n_row, n_col);
    std::vector<std::byte> packed(ember::kernels::packed_bytes(t, n_row, n_col) + 64);
    auto* start = reinterpret_cast<std::byte*>((reinterpret_cast<uintptr_t>(packed.data()) + 63) / 64 * 64);
    ember::kernels::pack_groups(view, start, 0, ember::kernels::packed_groups(n_row));
    view.packed = start;
    for (size_t n_tok : {size_t(16), size_t(17), size_t(48), size_t(64), size_t(100)}) {
      std::vector<float> x(n_tok * n_col), with(n_tok * n_row, 0.0f), without(n_tok * n_row, 0.0f);
      for (float& v : x) v = uniform(-2, 2);
      const size_t cuts[] = {0, 7, 16, 48, 53};
      Highway::set_amx_enabled(true);
      if (!Highway::amx_enabled()) {
        std::printf("FAIL: AMX (emulated) is not enabled\n");
        return 1;
      }
      for (size_t a = 0; a + 1 < std::size(cuts); ++a)
        Highway::matmul(view, x.data(), n_col, n_tok, with.data(), n_row, cuts[a], cuts[a + 1]);
      Highway::set_amx_enabled(false);
      Highway::matmul(view, x.data(), n_col, n_tok, without.data(), n_row, 0, n_row);
      if (std::memcmp(with.data(), without.data(), with.size() * sizeof(float)) != 0) {
        std::printf("FAIL %s, %zu tokens: the emulated AMX kernel's bits differ from VNNI's\n",
                    std::string(ember::name(t)).c_str(), n_tok);
        ++failures;
      }
    }
  }
  std::printf("amx_emulated: %s\n",
              failures ? "FAILED" : "Q4_0, Q4_1, Q8_0, Q4_K: AMX (emulated) == VNNI, bit for bit");
  return failures ? 1 : 0;
}
