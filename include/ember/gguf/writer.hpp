// GGUF v3 writer: metadata and tensors in, a file (or bytes) out. Round-trips through gguf::File.
#pragma once

#include <cstdio>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ember/core/result.hpp"
#include "ember/gguf/reader.hpp"
#include "ember/tensor/dtype.hpp"

namespace ember::gguf {

class Writer {
 public:
  explicit Writer(uint32_t alignment = kDefaultAlignment) : alignment_(alignment) {}

  void add_u8(std::string_view key, uint8_t v) { add_scalar(key, ValueType::u8, v); }
  void add_i8(std::string_view key, int8_t v) { add_scalar(key, ValueType::i8, v); }
  void add_u16(std::string_view key, uint16_t v) { add_scalar(key, ValueType::u16, v); }
  void add_i16(std::string_view key, int16_t v) { add_scalar(key, ValueType::i16, v); }
  void add_u32(std::string_view key, uint32_t v) { add_scalar(key, ValueType::u32, v); }
  void add_i32(std::string_view key, int32_t v) { add_scalar(key, ValueType::i32, v); }
  void add_u64(std::string_view key, uint64_t v) { add_scalar(key, ValueType::u64, v); }
  void add_i64(std::string_view key, int64_t v) { add_scalar(key, ValueType::i64, v); }
  void add_f32(std::string_view key, float v) { add_scalar(key, ValueType::f32, v); }
  void add_f64(std::string_view key, double v) { add_scalar(key, ValueType::f64, v); }
  void add_bool(std::string_view key, bool v) { add_scalar(key, ValueType::boolean, uint8_t(v ? 1 : 0)); }
  void add_string(std::string_view key, std::string_view v) {
    begin_kv(key, ValueType::string);
    put_string(v);
  }
  void add_strings(std::string_view key, std::span<const std::string> v) {
    begin_array(key, ValueType::string, v.size());
    for (auto& s : v) put_string(s);
  }
  void add_f32s(std::string_view key, std::span<const float> v) { add_numbers(key, ValueType::f32, v); }
  void add_i32s(std::string_view key, std::span<const int32_t> v) { add_numbers(key, ValueType::i32, v); }
  void add_u32s(std::string_view key, std::span<const uint32_t> v) { add_numbers(key, ValueType::u32, v); }

  // Copies a value read from another file (e.g. when re-quantizing a model).
  void add_value(std::string_view key, const Value& v) {
    begin_kv(key, v.type());
    put_value_body(v);
  }

  // `data` must hold exactly the bytes the type and shape need; it is copied.
  Result<void> add_tensor(std::string_view name, DType dtype, std::span<const uint64_t> ne,
                          std::span<const std::byte> data) {
    if (ne.empty() || ne.size() > kMaxDims)
      return make_error(Errc::invalid_argument, "tensor " + std::string(name) + ": 1 to 4 dimensions allowed");
    uint64_t n = 1;
    for (auto d : ne) n *= d;
    if (ne[0] % block_size(dtype) != 0)
      return make_error(Errc::invalid_argument, "tensor " + std::string(name) + ": row length " +
                                                    std::to_string(ne[0]) + " is not a multiple of " +
                                                    std::string(ember::name(dtype)) + "'s block size " +
                                                    std::to_string(block_size(dtype)));
    const uint64_t need = n / block_size(dtype) * block_bytes(dtype);
    if (data.size() != need)
      return make_error(Errc::invalid_argument, "tensor " + std::string(name) + ": " + std::to_string(data.size()) +
                                                    " bytes given, type and shape need " + std::to_string(need));
    put_string_to(tensor_info_, name);
    put_to(tensor_info_, uint32_t(ne.size()));
    for (auto d : ne) put_to(tensor_info_, uint64_t(d));
    put_to(tensor_info_, uint32_t(dtype));
    put_to(tensor_info_, uint64_t(data_.size()));
    data_.insert(data_.end(), data.begin(), data.end());
    data_.resize((data_.size() + alignment_ - 1) / alignment_ * alignment_, std::byte{0});
    ++n_tensors_;
    return {};
  }

  std::vector<std::byte> to_bytes() const {
    std::vector<std::byte> out;
    out.reserve(24 + kv_.size() + tensor_info_.size() + alignment_ + data_.size());
    const char magic[4] = {'G', 'G', 'U', 'F'};
    for (char ch : magic) out.push_back(std::byte(ch));
    put_to(out, uint32_t(3));
    put_to(out, uint64_t(n_tensors_));
    put_to(out, uint64_t(n_kv_ + (alignment_ != kDefaultAlignment ? 1 : 0)));
    out.insert(out.end(), kv_.begin(), kv_.end());
    if (alignment_ != kDefaultAlignment) {
      put_string_to(out, "general.alignment");
      put_to(out, uint32_t(ValueType::u32));
      put_to(out, uint32_t(alignment_));
    }
    out.insert(out.end(), tensor_info_.begin(), tensor_info_.end());
    out.resize((out.size() + alignment_ - 1) / alignment_ * alignment_, std::byte{0});
    out.insert(out.end(), data_.begin(), data_.end());
    return out;
  }

  Result<void> write(const std::string& path) const {
    const auto bytes = to_bytes();
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) return make_error(Errc::io, "cannot create " + path);
    const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
    if (std::fclose(f) != 0 || !ok) return make_error(Errc::io, "cannot write " + path);
    return {};
  }

 private:
  template <class T>
  static void put_to(std::vector<std::byte>& out, T v) {
    const auto* p = reinterpret_cast<const std::byte*>(&v);
    out.insert(out.end(), p, p + sizeof v);
  }
  static void put_string_to(std::vector<std::byte>& out, std::string_view s) {
    put_to(out, uint64_t(s.size()));
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    out.insert(out.end(), p, p + s.size());
  }
  void put_string(std::string_view s) { put_string_to(kv_, s); }
  void begin_kv(std::string_view key, ValueType t) {
    put_string_to(kv_, key);
    put_to(kv_, uint32_t(t));
    ++n_kv_;
  }
  void begin_array(std::string_view key, ValueType elem, uint64_t n) {
    begin_kv(key, ValueType::array);
    put_to(kv_, uint32_t(elem));
    put_to(kv_, n);
  }
  template <class T>
  void add_scalar(std::string_view key, ValueType t, T v) {
    begin_kv(key, t);
    put_to(kv_, v);
  }
  template <class T>
  void add_numbers(std::string_view key, ValueType t, std::span<const T> v) {
    begin_array(key, t, v.size());
    for (auto x : v) put_to(kv_, x);
  }
  void put_value_body(const Value& v) {
    if (v.type() == ValueType::string) return put_string(*v.as_string());
    if (!v.is_array()) {
      auto raw = v.raw_elements();
      kv_.insert(kv_.end(), raw.begin(), raw.end());
      return;
    }
    put_to(kv_, uint32_t(v.element_type()));
    put_to(kv_, uint64_t(v.size()));
    if (v.element_type() == ValueType::string) {
      for (size_t i = 0; i < v.size(); ++i) put_string(v.string_at(i));
    } else if (v.element_type() == ValueType::array) {
      for (size_t i = 0; i < v.size(); ++i) put_value_body(v.at(i));
    } else {
      auto raw = v.raw_elements();
      kv_.insert(kv_.end(), raw.begin(), raw.end());
    }
  }

  uint32_t alignment_;
  uint64_t n_kv_ = 0;
  uint64_t n_tensors_ = 0;
  std::vector<std::byte> kv_;
  std::vector<std::byte> tensor_info_;
  std::vector<std::byte> data_;
};

}  // namespace ember::gguf
