// GGUF reader and writer: round trips, real files, and handcrafted bad files that must
// each give a clear error (never a crash, hang or out-of-bounds read: run under ASan).
#include <doctest/doctest.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "data_path.hpp"
#include "ember/gguf/reader.hpp"
#include "ember/gguf/writer.hpp"

using ember::DType;
using ember::gguf::File;
using ember::gguf::ValueType;
using ember::gguf::Writer;

namespace {

// Builds GGUF bytes field by field, so a test can write exactly the malformation it means.
struct Bytes {
  std::vector<std::byte> b;
  Bytes& raw(const void* p, size_t n) {
    auto* c = static_cast<const std::byte*>(p);
    b.insert(b.end(), c, c + n);
    return *this;
  }
  Bytes& u32(uint32_t v) { return raw(&v, 4); }
  Bytes& u64(uint64_t v) { return raw(&v, 8); }
  Bytes& f32(float v) { return raw(&v, 4); }
  Bytes& str(std::string_view s) { return u64(s.size()).raw(s.data(), s.size()); }
  Bytes& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    return raw("GGUF", 4).u32(version).u64(n_tensors).u64(n_kv);
  }
  Bytes& kv_u32(std::string_view key, uint32_t v) { return str(key).u32(uint32_t(ValueType::u32)).u32(v); }
  Bytes& tensor(std::string_view name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    str(name).u32(uint32_t(ne.size()));
    for (auto d : ne) u64(d);
    return u32(type).u64(offset);
  }
  Bytes& pad(size_t alignment = 32) {
    while (b.size() % alignment) b.push_back(std::byte{0});
    return *this;
  }
  Bytes& zeros(size_t n) {
    b.insert(b.end(), n, std::byte{0});
    return *this;
  }
};

std::string error_of(const std::vector<std::byte>& bytes) {
  auto f = File::from_memory(bytes);
  if (f) return "";
  return f.error().message();
}

// A small valid file: two kv pairs and one 32×2 F32 tensor.
Bytes valid_file() {
  Bytes x;
  x.header(1, 2).kv_u32("a.b", 7).str("name").u32(uint32_t(ValueType::string)).str("tiny");
  x.tensor("w", {32, 2}, 0, 0).pad().zeros(32 * 2 * 4);
  return x;
}

}  // namespace

TEST_CASE("gguf: writer output reads back with every value type") {
  Writer w;
  w.add_u8("k.u8", 200);
  w.add_i8("k.i8", -5);
  w.add_u16("k.u16", 60000);
  w.add_i16("k.i16", -300);
  w.add_u32("k.u32", 4000000000u);
  w.add_i32("k.i32", -2000000000);
  w.add_u64("k.u64", 1ull << 40);
  w.add_i64("k.i64", -(1ll << 40));
  w.add_f32("k.f32", 0.25f);
  w.add_f64("k.f64", -1.5);
  w.add_bool("k.bool", true);
  w.add_string("k.str", "héllo");
  std::vector<std::string> strs = {"a", "", "ccc"};
  w.add_strings("k.strs", strs);
  std::vector<float> fl = {1.f, -2.f, 3.5f};
  w.add_f32s("k.f32s", fl);
  std::vector<float> data(64);
  for (int i = 0; i < 64; ++i) data[i] = float(i) - 10.f;
  std::vector<uint64_t> ne = {32, 2};
  REQUIRE(w.add_tensor("t.f32", DType::F32, ne, std::as_bytes(std::span(data))).ok());
  std::vector<std::byte> q(18 * 2, std::byte{1});
  std::vector<uint64_t> ne_q = {64};
  REQUIRE(w.add_tensor("t.q4", DType::Q4_0, ne_q, q).ok());

  const auto bytes = w.to_bytes();
  auto f = File::from_memory(bytes);
  REQUIRE_MESSAGE(f.ok(), (f.ok() ? "" : f.error().message()));
  CHECK(f->version() == 3);
  CHECK(*f->find("k.u8")->as_uint() == 200);
  CHECK(*f->find("k.i8")->as_int() == -5);
  CHECK(!f->find("k.i8")->as_uint());
  CHECK(*f->find("k.u16")->as_uint() == 60000);
  CHECK(*f->find("k.i16")->as_int() == -300);
  CHECK(*f->get_uint("k.u32") == 4000000000u);
  CHECK(*f->find("k.i32")->as_int() == -2000000000);
  CHECK(*f->get_uint("k.u64") == (1ull << 40));
  CHECK(*f->find("k.i64")->as_int() == -(1ll << 40));
  CHECK(*f->get_float("k.f32") == 0.25);
  CHECK(*f->get_float("k.f64") == -1.5);
  CHECK(*f->get_bool("k.bool") == true);
  CHECK(*f->get_string("k.str") == "héllo");
  const auto* s = f->find("k.strs");
  REQUIRE(s);
  CHECK(s->size() == 3);
  CHECK(s->string_at(2) == "ccc");
  CHECK(s->string_at(1).empty());
  CHECK(f->find("k.f32s")->number_at(1) == -2.0);
  const auto* t = f->find_tensor("t.f32");
  REQUIRE(t);
  CHECK(t->n_dims == 2);
  CHECK(t->ne[0] == 32);
  CHECK(t->ne[1] == 2);
  CHECK(std::memcmp(t->data, data.data(), 256) == 0);
  CHECK((t->data - bytes.data()) % 32 == 0);
  CHECK(f->find_tensor("t.q4")->n_bytes == 36);

  // Typed look-ups say what was wrong.
  CHECK(f->get_string("k.u32").error().message().find("should be a string") != std::string::npos);
  CHECK(f->get_uint("nope").error().message().find("nope is missing") != std::string::npos);
}

TEST_CASE("gguf: writer refuses a row length that is not a multiple of the block size") {
  Writer w;
  std::vector<std::byte> q(18);
  std::vector<uint64_t> ne = {33};
  auto r = w.add_tensor("x", DType::Q4_0, ne, q);
  REQUIRE(!r.ok());
  CHECK(r.error().message().find("not a multiple of Q4_0's block size 32") != std::string::npos);
}

TEST_CASE("gguf: copying every value of a real file round-trips") {
  EMBER_REQUIRE_DATA(path, "stories260K/stories260K.gguf");
  auto f = File::open(path);
  REQUIRE(f.ok());
  Writer w;
  for (auto& [k, v] : f->metadata()) w.add_value(k, v);
  auto bytes = w.to_bytes();
  auto g = File::from_memory(bytes);
  REQUIRE(g.ok());
  REQUIRE(g->metadata().size() == f->metadata().size());
  for (size_t i = 0; i < f->metadata().size(); ++i) {
    CHECK(g->metadata()[i].first == f->metadata()[i].first);
    CHECK(g->metadata()[i].second.to_string(1000000) == f->metadata()[i].second.to_string(1000000));
  }
  CHECK(f->tensors().size() == 48);
  CHECK(f->find_tensor("blk.0.ffn_gate.weight")->ne[1] == 172);
}

TEST_CASE("gguf: a valid handcrafted file parses") {
  auto x = valid_file();
  CHECK(error_of(x.b).empty());
}

TEST_CASE("gguf: handcrafted bad files each give a clear error") {
  struct Case {
    std::string what;
    std::vector<std::byte> bytes;
    const char* expect;  // a fragment of the message
  };
  std::vector<Case> cases;
  auto add = [&](const char* what, Bytes b, const char* expect) { cases.push_back({what, std::move(b.b), expect}); };

  add("empty file", Bytes{}, "bad magic");
  add("bad magic", Bytes{}.raw("GGUG", 4).u32(3).u64(0).u64(0), "bad magic");
  add("big-endian", Bytes{}.raw("FUGG", 4).u32(3).u64(0).u64(0), "big-endian");
  add("version 1", Bytes{}.header(0, 0, 1), "v1 is not supported");
  add("version 4", Bytes{}.header(0, 0, 4), "version 4 is not supported");
  add("header cut in the counts", Bytes{}.raw("GGUF", 4).u32(3).u32(0), "truncated");
  add("absurd kv count", Bytes{}.header(0, uint64_t(1) << 60), "metadata count");
  add("absurd tensor count", Bytes{}.header(uint64_t(1) << 61, 0), "tensor count");
  add("key length past the end", Bytes{}.header(0, 1).u64(uint64_t(1) << 62).zeros(8), "truncated");
  add("empty key", Bytes{}.header(0, 1).str("").u32(4).u32(1), "is empty");
  add("unknown value type", Bytes{}.header(0, 1).str("k").u32(13).u32(0), "unknown value type id 13");
  add("unknown array element type", Bytes{}.header(0, 1).str("k").u32(9).u32(77).u64(1).u32(0),
      "unknown value type id 77");
  add("absurd array length", Bytes{}.header(0, 1).str("k").u32(9).u32(4).u64(uint64_t(1) << 60).u32(0), "does not fit");
  add("string array length past the end", Bytes{}.header(0, 1).str("k").u32(9).u32(8).u64(1).u64(1000).raw("ab", 2),
      "truncated");
  {
    Bytes b;
    b.header(0, 1).str("k").u32(9);
    for (int i = 0; i < 20; ++i) b.u32(9).u64(1);  // arrays of arrays of arrays ...
    b.u32(4).u64(0);
    add("arrays nested too deeply", b, "nested too deeply");
  }
  add("value cut short", Bytes{}.header(0, 1).str("k").u32(uint32_t(ValueType::u64)).u32(0), "truncated");
  add("duplicate key", Bytes{}.header(0, 2).kv_u32("k", 1).kv_u32("k", 2), "duplicate metadata key k");
  add("alignment not a power of two", Bytes{}.header(0, 1).kv_u32("general.alignment", 24), "not a power of two");
  add("alignment zero", Bytes{}.header(0, 1).kv_u32("general.alignment", 0), "not a power of two");
  add("alignment of the wrong type", Bytes{}.header(0, 1).str("general.alignment").u32(6).f32(32.f), "should be u32");
  add("five dimensions", Bytes{}.header(1, 0).tensor("t", {1, 1, 1, 1, 1}, 0, 0).pad().zeros(32), "5 dimensions");
  add("zero dimensions", Bytes{}.header(1, 0).tensor("t", {}, 0, 0).pad().zeros(32), "0 dimensions");
  add("zero-sized dimension", Bytes{}.header(1, 0).tensor("t", {32, 0}, 0, 0).pad().zeros(32), "zero dimension");
  add("dimensions overflow",
      Bytes{}.header(1, 0).tensor("t", {uint64_t(1) << 40, uint64_t(1) << 40}, 0, 0).pad().zeros(32),
      "absurd element count");
  add("unknown tensor type", Bytes{}.header(1, 0).tensor("t", {32}, 4, 0).pad().zeros(128), "unknown type id 4");
  add("removed tensor type 31", Bytes{}.header(1, 0).tensor("t", {32}, 31, 0).pad().zeros(128), "unknown type id 31");
  add("row not a multiple of the block", Bytes{}.header(1, 0).tensor("t", {33}, 2, 0).pad().zeros(64),
      "not a multiple of Q4_0's block size 32");
  add("offset not aligned", Bytes{}.header(1, 0).tensor("t", {8}, 0, 4).pad().zeros(64),
      "not a multiple of the alignment");
  add("offset past the end", Bytes{}.header(1, 0).tensor("t", {8}, 0, uint64_t(1) << 40).pad().zeros(32),
      "needs 32 bytes");
  add("tensor too short for its type", Bytes{}.header(1, 0).tensor("t", {64, 2}, 8, 0).pad().zeros(34 * 4 - 1),
      "needs 136 bytes");
  add("data section missing", Bytes{}.header(1, 0).tensor("t", {32}, 0, 0), "");
  add("duplicate tensor name", Bytes{}.header(2, 0).tensor("t", {8}, 0, 0).tensor("t", {8}, 0, 32).pad().zeros(64),
      "duplicate tensor name t");
  add("overlapping tensors", Bytes{}.header(2, 0).tensor("a", {16}, 0, 0).tensor("b", {8}, 0, 32).pad().zeros(64),
      "overlap");
  add("empty tensor name", Bytes{}.header(1, 0).tensor("", {8}, 0, 0).pad().zeros(32), "empty name");

  CHECK(cases.size() >= 15);
  for (auto& c : cases) {
    INFO(c.what);
    const std::string msg = error_of(c.bytes);
    CHECK_MESSAGE(!msg.empty(), "accepted: ", c.what);
    CHECK_MESSAGE(msg.find(c.expect) != std::string::npos, c.what, ": ", msg);
  }
}

TEST_CASE("gguf: every truncation of a valid file is an error, never a crash") {
  auto x = valid_file();
  for (size_t n = 0; n < x.b.size(); ++n) {
    std::vector<std::byte> cut(x.b.begin(), x.b.begin() + n);  // own buffer: ASan sees reads past it
    CHECK_MESSAGE(!error_of(cut).empty(), "prefix of ", n, " bytes accepted");
  }
}

TEST_CASE("gguf: random corruption never crashes") {
  auto x = valid_file();
  std::mt19937 rng(1234);
  int rejected = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    auto b = x.b;
    const int flips = 1 + int(rng() % 4);
    for (int k = 0; k < flips; ++k) b[rng() % b.size()] = std::byte(rng());
    auto f = File::from_memory(b);
    if (!f) {
      ++rejected;
      CHECK(!f.error().message().empty());
    } else {
      for (auto& t : f->tensors()) {  // an accepted file's tensors lie inside the buffer
        CHECK(t.data >= b.data());
        CHECK(t.data + t.n_bytes <= b.data() + b.size());
      }
    }
  }
  CHECK(rejected > 0);
}

TEST_CASE("gguf: a missing file is an I/O error naming the path") {
  auto f = File::open("/nonexistent/model.gguf");
  REQUIRE(!f.ok());
  CHECK(f.error().code() == ember::Errc::io);
  CHECK(f.error().message().find("/nonexistent/model.gguf") != std::string::npos);
}
