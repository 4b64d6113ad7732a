// What a model is, in one place: architecture, size, tensor types, provenance from the
// GGUF metadata, and the memory a session will need. Built on request, never cached.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ember/gguf/reader.hpp"
#include "ember/model/hparams.hpp"

namespace ember {

struct MemoryPlan {
  uint64_t weights_bytes = 0;       // tensor data, used in place from the mapped file
  uint64_t packed_bytes = 0;        // row-interleaved copies made at load (LoadOptions::pack_weights)
  uint64_t kv_bytes_per_token = 0;  // KV cache growth per context position
  uint64_t kv_bytes = 0;            // for the planned context
  uint64_t scratch_bytes = 0;       // activations for the planned batch
  uint32_t n_ctx = 0;
  uint32_t n_batch = 0;
  uint64_t session_bytes() const { return kv_bytes + scratch_bytes; }
};

struct ModelCard {
  std::string architecture, name, organization, license, base_model, size_label, finetune;
  std::string file_type;  // the quantization the file says it has (general.file_type)
  std::string tokenizer;  // tokenizer.ggml.model / .pre
  uint32_t gguf_version = 0;
  uint64_t n_params = 0;
  uint64_t file_bytes = 0;
  Hyperparams hparams;
  std::map<std::string, uint64_t> tensor_types;               // type name -> number of tensors
  std::vector<std::pair<std::string, std::string>> metadata;  // every key, arrays abbreviated
  MemoryPlan memory;
};

// llama.cpp's LLAMA_FTYPE names for general.file_type.
inline std::string file_type_name(uint64_t t) {
  static const char* const names[] = {
      "ALL_F32",       "MOSTLY_F16",    "MOSTLY_Q4_0",   "MOSTLY_Q4_1",   "MOSTLY_Q4_1_SOME_F16",
      "MOSTLY_Q4_2",   "MOSTLY_Q4_3",   "MOSTLY_Q8_0",   "MOSTLY_Q5_0",   "MOSTLY_Q5_1",
      "MOSTLY_Q2_K",   "MOSTLY_Q3_K_S", "MOSTLY_Q3_K_M", "MOSTLY_Q3_K_L", "MOSTLY_Q4_K_S",
      "MOSTLY_Q4_K_M", "MOSTLY_Q5_K_S", "MOSTLY_Q5_K_M", "MOSTLY_Q6_K"};
  if (t < sizeof(names) / sizeof(names[0])) return names[t];
  if (t == 32) return "MOSTLY_BF16";
  return "type " + std::to_string(t);
}

inline ModelCard make_card(const gguf::File& f, const Hyperparams& h) {
  ModelCard c;
  c.architecture = h.arch;
  c.hparams = h;
  c.gguf_version = f.version();
  c.file_bytes = f.bytes().size();
  c.name = std::string(f.get_string_or("general.name", ""));
  c.organization = std::string(f.get_string_or("general.organization", ""));
  c.license = std::string(f.get_string_or("general.license", ""));
  c.size_label = std::string(f.get_string_or("general.size_label", ""));
  c.finetune = std::string(f.get_string_or("general.finetune", ""));
  c.base_model = std::string(f.get_string_or("general.base_model.0.name", ""));
  if (const auto* ft = f.find("general.file_type"); ft && ft->as_uint()) c.file_type = file_type_name(*ft->as_uint());
  c.tokenizer = std::string(f.get_string_or("tokenizer.ggml.model", ""));
  if (auto pre = f.get_string_or("tokenizer.ggml.pre", ""); !pre.empty()) c.tokenizer += " (" + std::string(pre) + ")";
  for (const auto& t : f.tensors()) {
    c.n_params += t.n_elements();
    c.memory.weights_bytes += t.n_bytes;
    ++c.tensor_types[std::string(name(t.dtype))];
  }
  for (const auto& [k, v] : f.metadata()) c.metadata.emplace_back(std::string(k), v.to_string(6));
  return c;
}

}  // namespace ember
