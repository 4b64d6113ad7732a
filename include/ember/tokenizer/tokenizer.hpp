// Text <-> token ids for the tokenizer stored in a GGUF file.
//
// Three families, chosen by `tokenizer.ggml.model`:
//   "llama" SentencePiece-style BPE over scores, with <0xXX> byte fallback;
//   "gpt2"  byte-level BPE over `tokenizer.ggml.merges`, words first split by
//           the pre-tokenizer that `tokenizer.ggml.pre` names;
//   "gemma4" the same merges run SentencePiece-style: on UTF-8 characters with
//           spaces written U+2581, <0xXX> byte fallback (Gemma 4);
//   "bert"  WordPiece;
//   "t5"    Unigram (UGM) with SentencePiece's precompiled normalization map.
// Behaviour follows llama.cpp (whose test vectors we pass), including its
// defaults when metadata is absent; WordPiece follows Hugging Face's BERT
// tokenizer where llama.cpp departs from it (marks, Hangul, long words). Special tokens: user-defined tokens are
// always matched in the text; control and unknown tokens only when the caller
// asks for parse_special (text from users must not forge control tokens).
//
// A Tokenizer is immutable after from_gguf(); share it across threads freely.
#pragma once

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ember/core/result.hpp"
#include "ember/gguf/reader.hpp"
#include "ember/tokenizer/bpe.hpp"
#include "ember/tokenizer/pretokenize.hpp"
#include "ember/tokenizer/spm.hpp"
#include "ember/tokenizer/ugm.hpp"
#include "ember/tokenizer/unicode.hpp"
#include "ember/tokenizer/vocab.hpp"
#include "ember/tokenizer/wordpiece.hpp"

namespace ember {

namespace tokenizer_detail {

// A byte trie of special-token texts: finds every special token that starts at
// a position by walking the text once, however many special tokens there are
// (DeepSeek has 2,400 user-defined ones, most starting with "[").
class SpecialTrie {
 public:
  void insert(std::string_view text, uint32_t value) {
    if (nodes_.empty()) nodes_.push_back({});
    int32_t node = 0;
    for (char c : text) {
      const uint8_t byte = static_cast<uint8_t>(c);
      int32_t child = nodes_[node].first_child;
      while (child >= 0 && nodes_[child].byte != byte) child = nodes_[child].next_sibling;
      if (child < 0) {
        child = static_cast<int32_t>(nodes_.size());
        nodes_.push_back({-1, nodes_[node].first_child, kNone, byte});
        nodes_[node].first_child = child;
      }
      node = child;
    }
    nodes_[node].value = value;
  }

  // Calls found(value) for each inserted text that starts at text[pos].
  template <class Found>
  void match_at(std::string_view text, size_t pos, Found found) const {
    if (nodes_.empty()) return;
    int32_t node = 0;
    for (size_t i = pos; i < text.size(); ++i) {
      const uint8_t byte = static_cast<uint8_t>(text[i]);
      int32_t child = nodes_[node].first_child;
      while (child >= 0 && nodes_[child].byte != byte) child = nodes_[child].next_sibling;
      if (child < 0) return;
      node = child;
      if (nodes_[node].value != kNone) found(nodes_[node].value);
    }
  }

 private:
  static constexpr uint32_t kNone = ~uint32_t{0};
  struct Node {
    int32_t first_child = -1, next_sibling = -1;
    uint32_t value = kNone;
    uint8_t byte = 0;
  };
  std::vector<Node> nodes_;  // nodes_[0] is the root
};

}  // namespace tokenizer_detail

class Tokenizer {
 public:
  enum class Kind { spm, bpe, wordpiece, ugm };

  struct EncodeOptions {
    std::optional<bool> add_bos;  // default: the model's add_bos()
    std::optional<bool> add_eos;  // default: the model's add_eos()
    bool parse_special = false;   // match control tokens ("<|im_start|>") in the text
  };

  static Result<Tokenizer> from_gguf(const gguf::File& file);

  std::vector<TokenId> encode(std::string_view text, const EncodeOptions& options) const;
  std::vector<TokenId> encode(std::string_view text) const { return encode(text, EncodeOptions()); }

  // The raw vocabulary string ("▁Hello", "Ġworld", "<0x0A>").
  std::string_view token_text(TokenId id) const { return vocab_.text(id); }
  TokenType token_type(TokenId id) const { return vocab_.type(id); }
  // The bytes this token contributes to decoded text. Control and unknown
  // tokens contribute nothing unless render_special.
  std::string token_to_piece(TokenId id, bool render_special = false) const {
    return std::string(piece(id, render_special));
  }
  std::string decode(std::span<const TokenId> ids, bool render_special = false) const;

  size_t n_vocab() const { return vocab_.size(); }
  Kind kind() const { return kind_; }
  TokenId bos() const { return bos_; }  // -1 when the model has none
  TokenId eos() const { return eos_; }  // -1 when the model has none
  TokenId unknown() const { return unknown_; }
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  // Byte-level BPE: tokens spell bytes in GPT-2's alphabet ("Ġ" for a space). False
  // for SentencePiece-style vocabularies, which spell text as it is with <0xXX> bytes.
  bool byte_level() const { return kind_ == Kind::bpe && !pre_.sentencepiece_style; }
  // SentencePiece: encode() puts a space in front of the text (and after
  // special tokens), as the model was trained with.
  bool add_space_prefix() const { return add_space_prefix_; }
  // True when the first piece of a text carries a space that encode() put there
  // (the space prefix, or WordPiece's word marker): decode() drops it, and a
  // Detokenizer over a whole text should too.
  bool strips_leading_space() const { return strip_first_space_; }
  bool is_end_of_generation(TokenId id) const {
    return std::binary_search(end_of_generation_.begin(), end_of_generation_.end(), id);
  }
  std::optional<TokenId> find(std::string_view token_text) const { return vocab_.find(token_text); }
  const Vocab& vocab() const { return vocab_; }

  // The decoded bytes of a token, as a view into the tokenizer.
  std::string_view piece(TokenId id, bool render_special = false) const {
    if (!vocab_.contains(id)) return {};
    const TokenType t = vocab_.type(id);
    if (render_special && (t == TokenType::control || t == TokenType::unknown)) return vocab_.text(id);
    return std::string_view(pieces_.data() + piece_offsets_[id], piece_offsets_[id + 1] - piece_offsets_[id]);
  }

 private:
  // White space next to some special tokens belongs to them (Hugging Face's
  // added-token lstrip/rstrip); GGUF does not record it, llama.cpp infers it.
  static constexpr uint8_t kStripLeft = 1, kStripRight = 2;

  struct Fragment {
    TokenId token;       // >= 0: a special token; -1: text
    size_t begin, size;  // the text's bytes
  };

  std::vector<Fragment> split_special(std::string_view text, bool parse_special) const;
  void encode_text(std::string_view text, bool first_or_after_special, std::vector<TokenId>& out) const;
  Result<void> build_pieces();

  Vocab vocab_;
  Kind kind_ = Kind::spm;
  pretokenize::Config pre_;
  std::optional<bpe::Merges> merges_;       // bpe only
  std::array<TokenId, 256> byte_tokens_{};  // SentencePiece-style bpe: <0xXX> tokens, -1 for none
  spm::Model spm_;                          // spm only
  wordpiece::Options wordpiece_;            // wordpiece only
  ugm::Model ugm_;                          // ugm only

  TokenId bos_ = -1, eos_ = -1, unknown_ = -1, separator_ = -1;
  bool add_bos_ = false, add_eos_ = false, add_space_prefix_ = false, strip_first_space_ = false;

  std::vector<TokenId> specials_;               // control, user-defined, unknown: longest text first
  std::vector<uint8_t> special_strip_;          // per specials_ entry: kStripLeft | kStripRight
  tokenizer_detail::SpecialTrie special_trie_;  // texts of specials_, valued by index
  std::vector<TokenId> end_of_generation_;      // sorted
  std::vector<char> pieces_;                    // decoded bytes of every token, back to back
  std::vector<uint32_t> piece_offsets_;         // (n_vocab + 1)
};

// ---------------------------------------------------------------------------
// Loading

namespace tokenizer_detail {

inline Error metadata_error(std::string_view key, std::string_view problem) {
  return make_error(Errc::format, "tokenizer metadata " + std::string(key) + ": " + std::string(problem));
}

// An optional token id key: absent keeps `id`; present must name a token.
inline Result<void> read_token_id(const gguf::File& file, std::string_view key, size_t n_vocab, TokenId& id) {
  const gguf::Value* v = file.find(key);
  if (!v) return {};
  const auto i = v->as_int();
  const auto u = v->as_uint();
  if (!i && !u) return metadata_error(key, "should be an integer");
  // Converters write -1, also as unsigned 0xFFFFFFFF, for "none".
  if ((i && *i < 0) || (u && (*u == UINT32_MAX || *u == UINT64_MAX))) {
    id = -1;
    return {};
  }
  if (*u >= n_vocab)
    return metadata_error(
        key, "token id " + std::to_string(*u) + " is outside the vocabulary of " + std::to_string(n_vocab) + " tokens");
  id = static_cast<TokenId>(*u);
  return {};
}

inline Result<void> read_flag(const gguf::File& file, std::string_view key, bool& flag) {
  const gguf::Value* v = file.find(key);
  if (!v) return {};
  const auto b = v->as_bool();
  if (!b) return metadata_error(key, "should be a bool");
  flag = *b;
  return {};
}

inline Result<const gguf::Value*> read_array(const gguf::File& file, std::string_view key, size_t min_size,
                                             std::initializer_list<gguf::ValueType> element_types, bool required) {
  const gguf::Value* v = file.find(key);
  if (!v) {
    if (required) return metadata_error(key, "is missing");
    return static_cast<const gguf::Value*>(nullptr);
  }
  if (!v->is_array()) return metadata_error(key, "should be an array");
  if (std::find(element_types.begin(), element_types.end(), v->element_type()) == element_types.end())
    return metadata_error(key, "has the wrong element type");
  if (v->size() < min_size)
    return metadata_error(
        key, "has " + std::to_string(v->size()) + " entries, the vocabulary has " + std::to_string(min_size));
  return v;
}

// Tokens that end a turn, by their text, for models whose metadata names only EOS.
inline bool is_end_of_generation_text(std::string_view t) {
  static constexpr std::string_view kTexts[] = {
      "<|eot_id|>",
      "<|im_end|>",
      "<|end|>",
      "<end_of_turn>",
      "<|endoftext|>",
      "<|eom_id|>",
      "<EOT>",
      "_<EOT>",
      "<|end_of_text|>",
      "<end_of_utterance>",
      "<eos>",
      "</s>",
      "<\xEF\xBD\x9C"
      "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
  };
  return std::find(std::begin(kTexts), std::end(kTexts), t) != std::end(kTexts);
}

// Fill-in-the-middle padding, repository and file separators also end generation.
inline bool is_fill_in_middle_stop_text(std::string_view t) {
  static constexpr std::string_view kTexts[] = {
      "<|fim_pad|>",  "<fim-pad>",     "<fim_pad>",  "<PAD>",  "[PAD]",                       // padding
      "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", "<|file_sep|>",  // separators
  };
  return std::find(std::begin(kTexts), std::end(kTexts), t) != std::end(kTexts);
}

}  // namespace tokenizer_detail

inline Result<Tokenizer> Tokenizer::from_gguf(const gguf::File& file) {
  using namespace tokenizer_detail;
  using VT = gguf::ValueType;
  Tokenizer tok;

  const gguf::Value* model_value = file.find("tokenizer.ggml.model");
  if (!model_value || !model_value->as_string())
    return metadata_error("tokenizer.ggml.model", "is missing (the file has no tokenizer)");
  const std::string_view model = *model_value->as_string();

  EMBER_TRY(const gguf::Value* tokens, read_array(file, "tokenizer.ggml.tokens", 0, {VT::string}, true));
  const size_t n = tokens->size();
  if (n == 0) return metadata_error("tokenizer.ggml.tokens", "is empty");
  if (n > static_cast<size_t>(INT32_MAX)) return metadata_error("tokenizer.ggml.tokens", "has too many tokens");
  EMBER_TRY(const gguf::Value* types, read_array(file, "tokenizer.ggml.token_type", n, {VT::i32, VT::u32}, false));
  EMBER_TRY(const gguf::Value* scores, read_array(file, "tokenizer.ggml.scores", n, {VT::f32, VT::i32}, false));

  std::vector<TokenType> type_list(n, TokenType::normal);
  std::vector<float> score_list(n, 0.0f);
  for (size_t i = 0; i < n; ++i) {
    if (types) {
      const int64_t t = types->int_at(i);
      type_list[i] = (t >= 0 && t <= 6) ? static_cast<TokenType>(t) : TokenType::undefined;
    }
    if (scores) score_list[i] = static_cast<float>(scores->number_at(i));
  }

  // Defaults are llama.cpp's, for files converted before the keys existed.
  if (model == "llama") {
    tok.kind_ = Kind::spm;
    tok.bos_ = 1, tok.eos_ = 2, tok.unknown_ = 0;
    tok.add_bos_ = true, tok.add_space_prefix_ = true;
  } else if (model == "gpt2") {
    tok.kind_ = Kind::bpe;
    const gguf::Value* pre_value = file.find("tokenizer.ggml.pre");
    const std::string_view pre = pre_value && pre_value->as_string() ? *pre_value->as_string() : "default";
    auto config = pretokenize::config_for(pre);
    if (!config)
      return make_error(Errc::unsupported,
                        "tokenizer.ggml.pre = \"" + std::string(pre) + "\" names a pre-tokenizer ember does not know");
    tok.pre_ = std::move(*config);
    tok.bos_ = 11, tok.eos_ = 11;  // Falcon's, as llama.cpp assumes
    tok.add_bos_ = tok.pre_.add_bos;
  } else if (model == "gemma4") {
    // llama.cpp ignores tokenizer.ggml.pre here and knows no default special tokens.
    tok.kind_ = Kind::bpe;
    tok.pre_ = *pretokenize::config_for("gemma4");
    tok.add_bos_ = true;
  } else if (model == "bert") {
    tok.kind_ = Kind::wordpiece;
    tok.bos_ = 101, tok.unknown_ = 100, tok.separator_ = 102;
    tok.add_bos_ = true, tok.add_eos_ = true;
  } else if (model == "t5") {
    tok.kind_ = Kind::ugm;
    tok.eos_ = 1, tok.unknown_ = 2;
    tok.add_eos_ = true;
  } else {
    return make_error(Errc::unsupported, "tokenizer.ggml.model = \"" + std::string(model) +
                                             "\" is not a tokenizer ember knows "
                                             "(llama, gpt2, gemma4, bert, t5)");
  }

  tok.vocab_ = Vocab::build(
      n, [&](size_t i) { return tokens->string_at(i); }, std::move(type_list), std::move(score_list));

  if (tok.kind_ == Kind::bpe) {
    EMBER_TRY(const gguf::Value* merges, read_array(file, "tokenizer.ggml.merges", 0, {VT::string}, true));
    EMBER_TRY(auto built,
              bpe::Merges::build(tok.vocab_, merges->size(), [&](size_t i) { return merges->string_at(i); }));
    tok.merges_ = std::move(built);
  }

  // Defaults that point outside a small vocabulary mean "none".
  for (TokenId* id : {&tok.bos_, &tok.eos_, &tok.unknown_, &tok.separator_})
    if (!tok.vocab_.contains(*id)) *id = -1;
  TokenId eot = -1, eom = -1, fim_pad = -1, fim_rep = -1, fim_sep = -1;
  if (tok.kind_ == Kind::wordpiece) EMBER_TRY_VOID(read_token_id(file, "tokenizer.ggml.cls_token_id", n, tok.bos_));
  EMBER_TRY_VOID(read_token_id(file, "tokenizer.ggml.bos_token_id", n, tok.bos_));
  EMBER_TRY_VOID(read_token_id(file, "tokenizer.ggml.eos_token_id", n, tok.eos_));
  EMBER_TRY_VOID(read_token_id(file, "tokenizer.ggml.unknown_token_id", n, tok.unknown_));
  if (tok.kind_ == Kind::wordpiece)
    EMBER_TRY_VOID(read_token_id(file, "tokenizer.ggml.seperator_token_id", n, tok.separator_));
  EMBER_TRY_VOID(read_token_id(file, "tokenizer.ggml.eot_token_id", n, eot));
  EMBER_TRY_VOID(read_token_id(file, "tokenizer.ggml.eom_token_id", n, eom));
  EMBER_TRY_VOID(read_token_id(file, "tokenizer.ggml.fim_pad_token_id", n, fim_pad));
  EMBER_TRY_VOID(read_token_id(file, "tokenizer.ggml.fim_rep_token_id", n, fim_rep));
  EMBER_TRY_VOID(read_token_id(file, "tokenizer.ggml.fim_sep_token_id", n, fim_sep));
  EMBER_TRY_VOID(read_flag(file, "tokenizer.ggml.add_bos_token", tok.add_bos_));
  EMBER_TRY_VOID(read_flag(file, "tokenizer.ggml.add_eos_token", tok.add_eos_));
  // Gemma 4 needs its BOS; llama.cpp adds it even where the file says not to.
  if (tok.pre_.sentencepiece_style) tok.add_bos_ = true;
  if (tok.kind_ == Kind::wordpiece) EMBER_TRY_VOID(read_flag(file, "tokenizer.ggml.add_sep_token", tok.add_eos_));
  if (tok.kind_ == Kind::spm || tok.kind_ == Kind::ugm)
    EMBER_TRY_VOID(read_flag(file, "tokenizer.ggml.add_space_prefix", tok.add_space_prefix_));
  bool remove_extra_whitespaces = false;
  if (tok.kind_ == Kind::ugm)
    EMBER_TRY_VOID(read_flag(file, "tokenizer.ggml.remove_extra_whitespaces", remove_extra_whitespaces));
  if (tok.kind_ == Kind::wordpiece) {
    EMBER_TRY_VOID(read_flag(file, "tokenizer.ggml.normalizer.lowercase", tok.wordpiece_.lowercase));
    tok.wordpiece_.strip_accents = tok.wordpiece_.lowercase;
    EMBER_TRY_VOID(read_flag(file, "tokenizer.ggml.normalizer.strip_accents", tok.wordpiece_.strip_accents));
    // BERT ends a sequence with [SEP]; it has no EOS of its own.
    if (tok.eos_ < 0) tok.eos_ = tok.separator_;
  }
  // (Unigram with merged white space puts a space before the first word even without the prefix flag.)
  tok.strip_first_space_ = tok.kind_ == Kind::wordpiece || (tok.kind_ == Kind::spm && tok.add_space_prefix_) ||
                           (tok.kind_ == Kind::ugm && (tok.add_space_prefix_ || remove_extra_whitespaces));
  if (tok.add_bos_ && tok.bos_ < 0)
    return metadata_error("tokenizer.ggml.add_bos_token", "is true but the model has no BOS token");
  if (tok.add_eos_ && tok.eos_ < 0)
    return metadata_error("tokenizer.ggml.add_eos_token", "is true but the model has no EOS token");

  if (tok.kind_ == Kind::spm) tok.spm_ = spm::Model::build(tok.vocab_, tok.unknown_);
  if (tok.kind_ == Kind::ugm) {
    EMBER_TRY(const gguf::Value* charsmap,
              read_array(file, "tokenizer.ggml.precompiled_charsmap", 0, {VT::u8, VT::i8}, false));
    std::span<const uint8_t> blob;
    if (charsmap) {
      const auto raw = charsmap->raw_elements();
      blob = {reinterpret_cast<const uint8_t*>(raw.data()), raw.size()};
    }
    auto parsed = ugm::Charsmap::parse(blob);
    if (!parsed) return metadata_error("tokenizer.ggml.precompiled_charsmap", parsed.error().message());
    tok.ugm_ = ugm::Model::build(tok.vocab_, tok.unknown_, std::move(*parsed),
                                 {tok.add_space_prefix_, remove_extra_whitespaces});
  }
  if (tok.pre_.sentencepiece_style) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; ++b) {
      const char hex[6] = {'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>'};
      tok.byte_tokens_[b] = tok.vocab_.find_or(std::string_view(hex, 6), -1);
    }
  }

  // End of generation: EOS, EOT, EOM, FIM stops and the well-known end-of-turn
  // texts. Like llama.cpp, such texts count as control tokens even if the file
  // says otherwise.
  if (tok.kind_ != Kind::wordpiece) {  // an encoder has no generation to end
    for (TokenId id : {tok.eos_, eot, eom, fim_pad, fim_rep, fim_sep})
      if (id >= 0) tok.end_of_generation_.push_back(id);
    for (size_t i = 0; i < n; ++i) {
      const TokenId id = static_cast<TokenId>(i);
      const std::string_view text = tok.vocab_.text(id);
      if (is_end_of_generation_text(text) || is_fill_in_middle_stop_text(text)) {
        tok.end_of_generation_.push_back(id);
        tok.vocab_.set_type(id, TokenType::control);
      }
    }
  }
  std::sort(tok.end_of_generation_.begin(), tok.end_of_generation_.end());
  tok.end_of_generation_.erase(std::unique(tok.end_of_generation_.begin(), tok.end_of_generation_.end()),
                               tok.end_of_generation_.end());

  // Special tokens, longest first so that "<|im_start|>" wins over "<|im".
  for (size_t i = 0; i < n; ++i) {
    const TokenId id = static_cast<TokenId>(i);
    const TokenType t = tok.vocab_.type(id);
    if ((t == TokenType::control || t == TokenType::user_defined || t == TokenType::unknown) &&
        !tok.vocab_.text(id).empty())
      tok.specials_.push_back(id);
  }
  std::stable_sort(tok.specials_.begin(), tok.specials_.end(),
                   [&](TokenId a, TokenId b) { return tok.vocab_.text(a).size() > tok.vocab_.text(b).size(); });
  {
    // llama.cpp's rules, keyed by model name: Phi-3's added tokens swallow the
    // white space after them; Jina v2 and ModernBERT masks the space before.
    std::string name(file.get_string_or("general.name", ""));
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const std::string_view pre = file.get_string_or("tokenizer.ggml.pre", "");
    const std::string_view arch = file.get_string_or("general.architecture", "");
    const bool phi3 = name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos;
    const bool jina =
        pre.find("jina-v2-de") != std::string_view::npos || pre.find("jina-v2-es") != std::string_view::npos ||
        pre.find("jina-v2-code") != std::string_view::npos || arch.find("nomic-bert-moe") != std::string_view::npos ||
        arch.find("jina-bert-v3") != std::string_view::npos;
    const bool modern_bert = name.find("modern-bert") != std::string::npos;
    tok.special_strip_.assign(tok.specials_.size(), 0);
    for (size_t k = 0; k < tok.specials_.size(); ++k) {
      const std::string_view t = tok.vocab_.text(tok.specials_[k]);
      if (phi3 && t != "<unk>" && t != "<s>" && t != "<|endoftext|>") tok.special_strip_[k] = kStripRight;
      if ((jina && t == "<mask>") || (modern_bert && t == "[MASK]")) tok.special_strip_[k] = kStripLeft;
    }
  }
  for (size_t k = 0; k < tok.specials_.size(); ++k)
    tok.special_trie_.insert(tok.vocab_.text(tok.specials_[k]), static_cast<uint32_t>(k));

  EMBER_TRY_VOID(tok.build_pieces());
  return tok;
}

inline Result<void> Tokenizer::build_pieces() {
  const size_t n = vocab_.size();
  piece_offsets_.assign(1, 0);
  piece_offsets_.reserve(n + 1);
  std::string piece;
  for (size_t i = 0; i < n; ++i) {
    const TokenId id = static_cast<TokenId>(i);
    const std::string_view text = vocab_.text(id);
    piece.clear();
    switch (vocab_.type(id)) {
      case TokenType::user_defined: piece = text; break;
      case TokenType::byte:
        // "<0x0A>" is the byte 0x0A.
        if (text.size() == 6 && text.substr(0, 3) == "<0x" && text[5] == '>') {
          const auto hex = [](char c) {
            return c >= '0' && c <= '9'   ? c - '0'
                   : c >= 'A' && c <= 'F' ? c - 'A' + 10
                   : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                          : -1;
          };
          const int hi = hex(text[3]), lo = hex(text[4]);
          if (hi >= 0 && lo >= 0) {
            piece.push_back(static_cast<char>(hi * 16 + lo));
            break;
          }
        }
        piece = text;
        break;
      case TokenType::normal:
        if (byte_level()) {
          // Undo the byte-level spelling; a code point that spells no byte stays as it is.
          for (size_t pos = 0; pos < text.size();) {
            const auto d = unicode::decode_utf8(text, pos);
            const int byte = unicode::code_point_to_byte(d.code_point);
            if (byte >= 0) {
              piece.push_back(static_cast<char>(byte));
            } else {
              piece.append(text.substr(pos, d.length));
            }
            pos += d.length;
          }
        } else {
          // U+2581 stands for a space.
          for (size_t pos = 0; pos < text.size();) {
            if (text.substr(pos, 3) == "\xE2\x96\x81") {
              piece.push_back(' ');
              pos += 3;
            } else {
              piece.push_back(text[pos++]);
            }
          }
        }
        break;
      default:  // control, unknown, unused, undefined: nothing unless rendered as special
        break;
    }
    pieces_.insert(pieces_.end(), piece.begin(), piece.end());
    if (pieces_.size() > UINT32_MAX) return make_error(Errc::unsupported, "tokenizer pieces exceed 4 GiB");
    piece_offsets_.push_back(static_cast<uint32_t>(pieces_.size()));
  }
  return {};
}

// ---------------------------------------------------------------------------
// Encoding

// Splits text around special tokens the way llama.cpp does: each special token
// in turn (longest first) is cut out of whatever text is still unsplit.
inline std::vector<Tokenizer::Fragment> Tokenizer::split_special(std::string_view text, bool parse_special) const {
  // Empty text has no fragment at all, so SentencePiece adds no space prefix.
  if (text.empty()) return {};
  std::vector<Fragment> fragments{{-1, 0, text.size()}};
  if (specials_.empty()) return fragments;

  // Only tokens that occur in the text can split it; find them in one scan.
  std::vector<uint32_t> present;
  for (size_t pos = 0; pos < text.size(); ++pos) {
    special_trie_.match_at(text, pos, [&](uint32_t k) {
      if (parse_special || vocab_.type(specials_[k]) == TokenType::user_defined) present.push_back(k);
    });
  }
  if (present.empty()) return fragments;
  std::sort(present.begin(), present.end());
  present.erase(std::unique(present.begin(), present.end()), present.end());

  // isspace() in the C locale, as llama.cpp strips.
  const auto is_space = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
  std::vector<Fragment> next;
  for (uint32_t k : present) {
    const TokenId id = specials_[k];
    const std::string_view special = vocab_.text(id);
    next.clear();
    for (const Fragment& f : fragments) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      size_t begin = f.begin;
      const size_t end = f.begin + f.size;
      while (begin < end) {
        const size_t match = text.substr(0, end).find(special, begin);
        if (match == std::string_view::npos) break;
        size_t left_end = match;
        if (special_strip_[k] & kStripLeft)
          while (left_end > begin && is_space(text[left_end - 1])) --left_end;
        if (left_end > begin) next.push_back({-1, begin, left_end - begin});
        next.push_back({id, match, special.size()});
        begin = match + special.size();
        if (special_strip_[k] & kStripRight)
          while (begin < end && is_space(text[begin])) ++begin;
      }
      if (begin < end) next.push_back({-1, begin, end - begin});
    }
    fragments.swap(next);
  }
  return fragments;
}

inline void Tokenizer::encode_text(std::string_view text, bool first_or_after_special,
                                   std::vector<TokenId>& out) const {
  switch (kind_) {
    case Kind::spm: {
      // SentencePiece sees spaces as U+2581, and a space in front of the text.
      std::string escaped;
      escaped.reserve(text.size() + 8);
      if (add_space_prefix_ && first_or_after_special) escaped += "\xE2\x96\x81";
      for (char c : text) {
        if (c == ' ') {
          escaped += "\xE2\x96\x81";
        } else {
          escaped.push_back(c);
        }
      }
      spm_.encode(escaped, vocab_, out);
      return;
    }
    case Kind::bpe: {
      // Invalid UTF-8 becomes U+FFFD here, as in llama.cpp.
      std::vector<uint32_t> cps = unicode::decode_utf8(text);
      if (pre_.sentencepiece_style)
        for (uint32_t& cp : cps)
          if (cp == ' ') cp = 0x2581;
      const std::vector<size_t> words = pretokenize::split(pre_.passes, cps);
      std::string word;
      bpe::Merges::Scratch scratch;
      size_t begin = 0;
      for (size_t len : words) {
        word.clear();
        for (size_t i = begin; i < begin + len; ++i) unicode::append_utf8(word, cps[i]);
        begin += len;
        if (pre_.sentencepiece_style) {
          // A run of line breaks that is a token stays whole (llama.cpp's Gemma 4 rule:
          // merges alone would not rebuild "\n\n\n").
          if (word.find_first_not_of('\n') == std::string::npos) {
            if (auto id = vocab_.find(word)) {
              out.push_back(*id);
              continue;
            }
          }
          merges_->encode_word_chars(word, vocab_, byte_tokens_, out, scratch);
          continue;
        }
        if (pre_.ignore_merges) {
          if (auto id = vocab_.find(merges_->spell(word))) {
            out.push_back(*id);
            continue;
          }
        }
        merges_->encode_word(word, vocab_, out, scratch);
      }
      return;
    }
    case Kind::ugm: ugm_.encode(text, vocab_, out); return;
    case Kind::wordpiece: {
      wordpiece::Words words;
      wordpiece::split_words(text, wordpiece_, words);
      std::string scratch;
      std::vector<size_t> boundaries;
      for (size_t i = 0; i < words.size(); ++i)
        wordpiece::encode_word(words[i], vocab_, unknown_, wordpiece_, out, scratch, boundaries);
      return;
    }
  }
}

inline std::vector<TokenId> Tokenizer::encode(std::string_view text, const EncodeOptions& options) const {
  std::vector<TokenId> out;
  out.reserve(text.size() / 3 + 4);
  if (options.add_bos.value_or(add_bos_) && bos_ >= 0) out.push_back(bos_);
  bool after_special = true;  // the text start counts as a boundary
  for (const Fragment& f : split_special(text, options.parse_special)) {
    if (f.token >= 0) {
      out.push_back(f.token);
      after_special = true;
    } else {
      encode_text(text.substr(f.begin, f.size), after_special, out);
      after_special = false;
    }
  }
  if (options.add_eos.value_or(add_eos_) && eos_ >= 0) out.push_back(eos_);
  return out;
}

// ---------------------------------------------------------------------------
// Decoding

inline std::string Tokenizer::decode(std::span<const TokenId> ids, bool render_special) const {
  std::string out;
  bool strip = strip_first_space_;
  for (TokenId id : ids) {
    std::string_view p = piece(id, render_special);
    if (strip && !p.empty()) {
      if (p.front() == ' ') p.remove_prefix(1);
      strip = false;
    }
    out.append(p);
  }
  return out;
}

}  // namespace ember
