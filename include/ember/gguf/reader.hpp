// GGUF v2/v3 reader: zero-copy (metadata strings and tensor data are views into the
// file's bytes) and validated before use. Every malformation is an Error that names
// the offending key or tensor; nothing is read outside the buffer.
//
// Layout (little-endian): "GGUF" u32 version, u64 n_tensors, u64 n_kv,
// n_kv × (string key, u32 type, value), n_tensors × (string name, u32 n_dims,
// u64 ne[n_dims], u32 type, u64 offset), padding to `general.alignment`, tensor data.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ember/core/mapped_file.hpp"
#include "ember/core/result.hpp"
#include "ember/tensor/dtype.hpp"

namespace ember::gguf {

static_assert(std::endian::native == std::endian::little, "ember reads GGUF on little-endian hosts");

enum class ValueType : uint32_t {
  u8 = 0,
  i8 = 1,
  u16 = 2,
  i16 = 3,
  u32 = 4,
  i32 = 5,
  f32 = 6,
  boolean = 7,
  string = 8,
  array = 9,
  u64 = 10,
  i64 = 11,
  f64 = 12,
};

inline constexpr uint32_t kDefaultAlignment = 32;
inline constexpr uint32_t kMaxDims = 4;
inline constexpr int kMaxArrayNesting = 8;

inline const char* type_name(ValueType t) {
  switch (t) {
    case ValueType::u8: return "u8";
    case ValueType::i8: return "i8";
    case ValueType::u16: return "u16";
    case ValueType::i16: return "i16";
    case ValueType::u32: return "u32";
    case ValueType::i32: return "i32";
    case ValueType::f32: return "f32";
    case ValueType::boolean: return "bool";
    case ValueType::string: return "string";
    case ValueType::array: return "array";
    case ValueType::u64: return "u64";
    case ValueType::i64: return "i64";
    case ValueType::f64: return "f64";
  }
  return "?";
}

// Size of a fixed-size value type; 0 for string and array.
inline size_t scalar_size(ValueType t) {
  switch (t) {
    case ValueType::u8:
    case ValueType::i8:
    case ValueType::boolean: return 1;
    case ValueType::u16:
    case ValueType::i16: return 2;
    case ValueType::u32:
    case ValueType::i32:
    case ValueType::f32: return 4;
    case ValueType::u64:
    case ValueType::i64:
    case ValueType::f64: return 8;
    default: return 0;
  }
}

// A metadata value. Scalars and numeric arrays point at their bytes in the file.
class Value {
 public:
  ValueType type() const { return type_; }
  bool is_array() const { return type_ == ValueType::array; }

  std::optional<uint64_t> as_uint() const {
    if (is_array() || !is_integer(type_)) return std::nullopt;
    auto v = integer_at_ptr(type_, raw_);
    if (v.negative) return std::nullopt;
    return v.u;
  }
  std::optional<int64_t> as_int() const {
    if (is_array() || !is_integer(type_)) return std::nullopt;
    auto v = integer_at_ptr(type_, raw_);
    if (!v.negative && v.u > uint64_t(INT64_MAX)) return std::nullopt;
    return v.negative ? v.i : int64_t(v.u);
  }
  std::optional<double> as_float() const {
    if (is_array() || type_ == ValueType::string || type_ == ValueType::boolean) return std::nullopt;
    return number_at_ptr(type_, raw_);
  }
  std::optional<bool> as_bool() const {
    if (type_ != ValueType::boolean) return std::nullopt;
    return raw_[0] != std::byte{0};
  }
  std::optional<std::string_view> as_string() const {
    if (type_ != ValueType::string) return std::nullopt;
    return str_;
  }

  // Arrays.
  ValueType element_type() const { return elem_type_; }
  size_t size() const { return is_array() ? count_ : 0; }
  std::string_view string_at(size_t i) const { return strings_[i]; }
  double number_at(size_t i) const { return number_at_ptr(elem_type_, raw_ + i * scalar_size(elem_type_)); }
  int64_t int_at(size_t i) const {
    auto v = integer_at_ptr(elem_type_, raw_ + i * scalar_size(elem_type_));
    return v.negative ? v.i : int64_t(v.u);
  }
  const Value& at(size_t i) const { return items_[i]; }  // arrays of arrays
  // Raw bytes of a numeric array (packed little-endian elements).
  std::span<const std::byte> raw_elements() const {
    return {raw_, is_array() ? count_ * scalar_size(elem_type_) : scalar_size(type_)};
  }

  // A short human-readable rendering (arrays abbreviated), for model cards and tools.
  std::string to_string(size_t max_items = 8) const {
    if (type_ == ValueType::string) return std::string(str_);
    if (type_ == ValueType::boolean) return *as_bool() ? "true" : "false";
    if (!is_array()) {
      if (type_ == ValueType::f32 || type_ == ValueType::f64) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.9g", *as_float());
        return buf;
      }
      auto v = integer_at_ptr(type_, raw_);
      return v.negative ? std::to_string(v.i) : std::to_string(v.u);
    }
    std::string s = "[";
    for (size_t i = 0; i < count_ && i < max_items; ++i) {
      if (i) s += ", ";
      if (elem_type_ == ValueType::string) {
        s += '"';
        s += strings_[i];
        s += '"';
      } else if (elem_type_ == ValueType::array) {
        s += items_[i].to_string(max_items);
      } else {
        Value e;
        e.type_ = elem_type_;
        e.raw_ = raw_ + i * scalar_size(elem_type_);
        s += e.to_string();
      }
    }
    if (count_ > max_items) s += ", ... (" + std::to_string(count_) + " items)";
    return s + "]";
  }

 private:
  friend class File;
  struct Integer {
    bool negative;
    uint64_t u;
    int64_t i;
  };
  static bool is_integer(ValueType t) {
    return scalar_size(t) != 0 && t != ValueType::f32 && t != ValueType::f64 && t != ValueType::boolean;
  }
  template <class T>
  static T load(const std::byte* p) {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  static Integer integer_at_ptr(ValueType t, const std::byte* p) {
    int64_t s = 0;
    switch (t) {
      case ValueType::u8: return {false, load<uint8_t>(p), 0};
      case ValueType::u16: return {false, load<uint16_t>(p), 0};
      case ValueType::u32: return {false, load<uint32_t>(p), 0};
      case ValueType::u64: return {false, load<uint64_t>(p), 0};
      case ValueType::boolean: return {false, load<uint8_t>(p) ? 1u : 0u, 0};
      case ValueType::i8: s = load<int8_t>(p); break;
      case ValueType::i16: s = load<int16_t>(p); break;
      case ValueType::i32: s = load<int32_t>(p); break;
      case ValueType::i64: s = load<int64_t>(p); break;
      case ValueType::f32: s = int64_t(load<float>(p)); break;
      case ValueType::f64: s = int64_t(load<double>(p)); break;
      default: break;
    }
    if (s < 0) return {true, 0, s};
    return {false, uint64_t(s), 0};
  }
  static double number_at_ptr(ValueType t, const std::byte* p) {
    if (t == ValueType::f32) return load<float>(p);
    if (t == ValueType::f64) return load<double>(p);
    auto v = integer_at_ptr(t, p);
    return v.negative ? double(v.i) : double(v.u);
  }

  ValueType type_ = ValueType::u8;
  ValueType elem_type_ = ValueType::u8;
  const std::byte* raw_ = nullptr;
  uint64_t count_ = 0;
  std::string_view str_;
  std::vector<std::string_view> strings_;
  std::vector<Value> items_;
};

struct TensorInfo {
  std::string_view name;
  DType dtype = DType::F32;
  uint32_t n_dims = 0;
  std::array<uint64_t, kMaxDims> ne{1, 1, 1, 1};  // ne[0] is the row length (innermost)
  uint64_t offset = 0;                            // from the start of the data section
  uint64_t n_bytes = 0;
  const std::byte* data = nullptr;

  uint64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  std::string shape_string() const {
    std::string s;
    for (uint32_t d = 0; d < n_dims; ++d) s += (d ? "×" : "") + std::to_string(ne[d]);
    return s;
  }
};

class File {
 public:
  File(File&&) noexcept = default;
  File& operator=(File&&) noexcept = default;

  // Memory-maps and validates a file.
  static Result<File> open(const std::string& path) {
    auto mapped = MappedFile::open(path);
    if (!mapped) return std::move(mapped).error();
    File f;
    f.mapped_ = std::make_unique<MappedFile>(std::move(*mapped));
    f.bytes_ = f.mapped_->bytes();
    auto r = f.parse();
    if (!r) return std::move(r).error().context(path);
    return f;
  }

  // Validates a buffer the caller owns; it must outlive the File and everything viewed through it.
  static Result<File> from_memory(std::span<const std::byte> bytes) {
    File f;
    f.bytes_ = bytes;
    auto r = f.parse();
    if (!r) return std::move(r).error();
    return f;
  }

  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  std::span<const std::byte> bytes() const { return bytes_; }
  // See MappedFile::release_pages; a no-op for a caller's buffer.
  void release_pages(std::span<const std::byte> range) const {
    if (mapped_) mapped_->release_pages(range);
  }

  const std::vector<std::pair<std::string_view, Value>>& metadata() const { return kv_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }

  const Value* find(std::string_view key) const {
    auto it = kv_index_.find(key);
    return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
  }
  const TensorInfo* find_tensor(std::string_view name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
  }

  // Typed look-ups with errors that say what was expected.
  Result<uint64_t> get_uint(std::string_view key) const {
    const Value* v = find(key);
    if (!v) return missing(key);
    if (auto u = v->as_uint()) return *u;
    return wrong_type(key, "a non-negative integer", *v);
  }
  Result<double> get_float(std::string_view key) const {
    const Value* v = find(key);
    if (!v) return missing(key);
    if (auto d = v->as_float()) return *d;
    return wrong_type(key, "a number", *v);
  }
  Result<std::string_view> get_string(std::string_view key) const {
    const Value* v = find(key);
    if (!v) return missing(key);
    if (auto s = v->as_string()) return *s;
    return wrong_type(key, "a string", *v);
  }
  Result<bool> get_bool(std::string_view key) const {
    const Value* v = find(key);
    if (!v) return missing(key);
    if (auto b = v->as_bool()) return *b;
    return wrong_type(key, "a bool", *v);
  }
  uint64_t get_uint_or(std::string_view key, uint64_t fallback) const {
    const Value* v = find(key);
    auto u = v ? v->as_uint() : std::nullopt;
    return u ? *u : fallback;
  }
  double get_float_or(std::string_view key, double fallback) const {
    const Value* v = find(key);
    auto d = v ? v->as_float() : std::nullopt;
    return d ? *d : fallback;
  }
  bool get_bool_or(std::string_view key, bool fallback) const {
    const Value* v = find(key);
    auto b = v ? v->as_bool() : std::nullopt;
    return b ? *b : fallback;
  }
  std::string_view get_string_or(std::string_view key, std::string_view fallback) const {
    const Value* v = find(key);
    auto s = v ? v->as_string() : std::nullopt;
    return s ? *s : fallback;
  }

 private:
  File() = default;

  static Error missing(std::string_view key) {
    return make_error(Errc::format, "metadata key " + std::string(key) + " is missing");
  }
  static Error wrong_type(std::string_view key, const char* expected, const Value& v) {
    return make_error(Errc::format, "metadata key " + std::string(key) + " should be " + expected + ", file has " +
                                        type_name(v.type()));
  }

  // A bounds-checked cursor over the file's bytes.
  struct Cursor {
    std::span<const std::byte> bytes;
    uint64_t pos = 0;
    uint64_t left() const { return bytes.size() - pos; }
    Error truncated(std::string_view what, uint64_t need) const {
      return make_error(Errc::format, "truncated file: " + std::string(what) + " needs " + std::to_string(need) +
                                          " bytes at offset " + std::to_string(pos) + ", file has " +
                                          std::to_string(left()) + " left");
    }
    template <class T>
    Result<T> read(std::string_view what) {
      if (left() < sizeof(T)) return truncated(what, sizeof(T));
      T v;
      std::memcpy(&v, bytes.data() + pos, sizeof v);
      pos += sizeof v;
      return v;
    }
    Result<std::string_view> read_string(std::string_view what) {
      EMBER_TRY(uint64_t n, read<uint64_t>(what));
      if (n > left()) return truncated(std::string(what) + " (a string of " + std::to_string(n) + " bytes)", n);
      std::string_view s(reinterpret_cast<const char*>(bytes.data() + pos), n);
      pos += n;
      return s;
    }
  };

  Result<void> parse() {
    Cursor c{bytes_};
    if (bytes_.size() < 4 || std::memcmp(bytes_.data(), "GGUF", 4) != 0) {
      if (bytes_.size() >= 4 && std::memcmp(bytes_.data(), "FUGG", 4) == 0)
        return make_error(Errc::unsupported, "big-endian GGUF files are not supported");
      return make_error(Errc::format, "not a GGUF file (bad magic; expected \"GGUF\" in the first 4 bytes)");
    }
    c.pos = 4;
    EMBER_TRY(version_, c.read<uint32_t>("version"));
    if (version_ == 1)
      return make_error(Errc::unsupported, "GGUF v1 is not supported; re-convert the model to GGUF v3");
    if (version_ != 2 && version_ != 3) {
      if ((version_ & 0xffff) == 0 && (version_ >> 16) != 0)
        return make_error(Errc::unsupported,
                          "GGUF file looks big-endian (version " + std::to_string(version_) + "); not supported");
      return make_error(Errc::unsupported,
                        "GGUF version " + std::to_string(version_) + " is not supported (ember reads v2 and v3)");
    }
    EMBER_TRY(uint64_t n_tensors, c.read<uint64_t>("tensor count"));
    EMBER_TRY(uint64_t n_kv, c.read<uint64_t>("metadata count"));
    // Each entry takes a minimum number of bytes, so absurd counts are caught before any allocation.
    if (n_kv > c.left() / 12)
      return make_error(Errc::format, "metadata count " + std::to_string(n_kv) + " is impossible for a file with " +
                                          std::to_string(c.left()) + " bytes left");
    if (n_tensors > c.left() / 24)
      return make_error(Errc::format, "tensor count " + std::to_string(n_tensors) + " is impossible for a file with " +
                                          std::to_string(c.left()) + " bytes left");

    kv_.reserve(n_kv);
    for (uint64_t i = 0; i < n_kv; ++i) {
      EMBER_TRY(std::string_view key, c.read_string("metadata key #" + std::to_string(i)));
      if (key.empty()) return make_error(Errc::format, "metadata key #" + std::to_string(i) + " is empty");
      EMBER_TRY(uint32_t type, c.read<uint32_t>("type of metadata key " + std::string(key)));
      Value v;
      auto r = read_value(c, type, v, 0);
      if (!r) return std::move(r).error().context("metadata key " + std::string(key));
      if (!kv_index_.emplace(key, kv_.size()).second)
        return make_error(Errc::format, "duplicate metadata key " + std::string(key));
      kv_.emplace_back(key, std::move(v));
    }

    alignment_ = kDefaultAlignment;
    if (const Value* a = find("general.alignment")) {
      if (a->type() != ValueType::u32)
        return make_error(Errc::format,
                          "general.alignment should be u32, file has " + std::string(type_name(a->type())));
      const uint64_t al = *a->as_uint();
      if (al == 0 || (al & (al - 1)) != 0 || al > (1u << 20))
        return make_error(Errc::format,
                          "general.alignment " + std::to_string(al) + " is not a power of two up to 1 MiB");
      alignment_ = uint32_t(al);
    }

    tensors_.reserve(n_tensors);
    for (uint64_t i = 0; i < n_tensors; ++i) {
      TensorInfo t;
      EMBER_TRY(t.name, c.read_string("name of tensor #" + std::to_string(i)));
      const std::string tname = "tensor " + std::string(t.name);
      if (t.name.empty()) return make_error(Errc::format, "tensor #" + std::to_string(i) + " has an empty name");
      EMBER_TRY(t.n_dims, c.read<uint32_t>("dimension count of " + tname));
      if (t.n_dims == 0 || t.n_dims > kMaxDims)
        return make_error(Errc::format, tname + " has " + std::to_string(t.n_dims) + " dimensions (1 to 4 allowed)");
      for (uint32_t d = 0; d < t.n_dims; ++d) {
        EMBER_TRY(t.ne[d], c.read<uint64_t>("shape of " + tname));
      }
      EMBER_TRY(uint32_t type_id, c.read<uint32_t>("type of " + tname));
      EMBER_TRY(t.offset, c.read<uint64_t>("data offset of " + tname));
      auto info = dtype_info(type_id);
      if (!info) return make_error(Errc::format, tname + " has unknown type id " + std::to_string(type_id));
      t.dtype = static_cast<DType>(type_id);
      uint64_t n = 1;
      for (uint32_t d = 0; d < kMaxDims; ++d) {
        if (t.ne[d] == 0) return make_error(Errc::format, tname + " has a zero dimension");
        if (__builtin_mul_overflow(n, t.ne[d], &n) || n > (uint64_t(1) << 50))
          return make_error(Errc::format, tname + " shape " + t.shape_string() + " has an absurd element count");
      }
      if (t.ne[0] % info->block_size != 0)
        return make_error(Errc::format, tname + ": row length " + std::to_string(t.ne[0]) + " is not a multiple of " +
                                            std::string(info->name) + "'s block size " +
                                            std::to_string(info->block_size));
      t.n_bytes = n / info->block_size * info->block_bytes;
      if (t.offset % alignment_ != 0)
        return make_error(Errc::format, tname + " data offset " + std::to_string(t.offset) +
                                            " is not a multiple of the alignment " + std::to_string(alignment_));
      if (!tensor_index_.emplace(t.name, tensors_.size()).second)
        return make_error(Errc::format, "duplicate tensor name " + std::string(t.name));
      tensors_.push_back(t);
    }

    data_offset_ = (c.pos + alignment_ - 1) / alignment_ * alignment_;
    const uint64_t size = bytes_.size();
    if (n_tensors > 0 && data_offset_ > size)
      return make_error(Errc::format, "truncated file: the tensor data section would start at " +
                                          std::to_string(data_offset_) + ", past the end of the file (" +
                                          std::to_string(size) + " bytes)");
    for (auto& t : tensors_) {
      const uint64_t avail = size - data_offset_;
      if (t.offset > avail || t.n_bytes > avail - t.offset)
        return make_error(Errc::format, "tensor " + std::string(t.name) + ": " + t.shape_string() + " " +
                                            std::string(name(t.dtype)) + " needs " + std::to_string(t.n_bytes) +
                                            " bytes at data offset " + std::to_string(t.offset) + ", file has " +
                                            std::to_string(t.offset > avail ? 0 : avail - t.offset) + " left");
      t.data = bytes_.data() + data_offset_ + t.offset;
    }
    // Tensors must not share bytes: an overlap means a corrupt or hostile file.
    std::vector<const TensorInfo*> by_offset;
    for (auto& t : tensors_) by_offset.push_back(&t);
    std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
    for (size_t i = 1; i < by_offset.size(); ++i)
      if (by_offset[i - 1]->offset + by_offset[i - 1]->n_bytes > by_offset[i]->offset)
        return make_error(Errc::format, "tensors " + std::string(by_offset[i - 1]->name) + " and " +
                                            std::string(by_offset[i]->name) + " overlap in the data section");
    return {};
  }

  Result<void> read_value(Cursor& c, uint32_t type, Value& v, int depth) {
    if (type > uint32_t(ValueType::f64))
      return make_error(Errc::format, "unknown value type id " + std::to_string(type));
    v.type_ = static_cast<ValueType>(type);
    if (v.type_ == ValueType::string) {
      EMBER_TRY(v.str_, c.read_string("string value"));
      return {};
    }
    if (v.type_ != ValueType::array) {
      const size_t n = scalar_size(v.type_);
      if (c.left() < n) return c.truncated(std::string(type_name(v.type_)) + " value", n);
      v.raw_ = c.bytes.data() + c.pos;
      c.pos += n;
      return {};
    }
    return read_array_body(c, v, depth);
  }

  // Element type, length and elements; nested arrays repeat this without a type id of their own.
  Result<void> read_array_body(Cursor& c, Value& v, int depth) {
    v.type_ = ValueType::array;
    if (depth >= kMaxArrayNesting) return make_error(Errc::format, "arrays nested too deeply");
    EMBER_TRY(uint32_t elem, c.read<uint32_t>("array element type"));
    if (elem > uint32_t(ValueType::f64))
      return make_error(Errc::format, "array of unknown value type id " + std::to_string(elem));
    v.elem_type_ = static_cast<ValueType>(elem);
    EMBER_TRY(v.count_, c.read<uint64_t>("array length"));
    const size_t esize = scalar_size(v.elem_type_);
    const uint64_t min_size = esize ? esize : (v.elem_type_ == ValueType::string ? 8 : 12);
    if (v.count_ > c.left() / min_size)
      return make_error(Errc::format, "array of " + std::to_string(v.count_) + " " + type_name(v.elem_type_) +
                                          " elements does not fit in the " + std::to_string(c.left()) + " bytes left");
    if (esize) {
      v.raw_ = c.bytes.data() + c.pos;
      c.pos += v.count_ * esize;
    } else if (v.elem_type_ == ValueType::string) {
      v.strings_.reserve(v.count_);
      for (uint64_t i = 0; i < v.count_; ++i) {
        EMBER_TRY(std::string_view s, c.read_string("array string #" + std::to_string(i)));
        v.strings_.push_back(s);
      }
    } else {
      v.items_.reserve(v.count_);
      for (uint64_t i = 0; i < v.count_; ++i) {
        Value item;
        EMBER_TRY_VOID(read_array_body(c, item, depth + 1));
        v.items_.push_back(std::move(item));
      }
    }
    return {};
  }

  std::unique_ptr<MappedFile> mapped_;  // null when reading a caller's buffer
  std::span<const std::byte> bytes_;
  uint32_t version_ = 0;
  uint32_t alignment_ = kDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string_view, Value>> kv_;
  std::unordered_map<std::string_view, size_t> kv_index_;
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string_view, size_t> tensor_index_;
};

}  // namespace ember::gguf
