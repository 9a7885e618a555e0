// LoadHfTokenizer: HF tokenizer.json for byte-level BPE (GPT-2, SmolLM, Llama-3, Qwen2 families).
//
// Supported (anything else is rejected with "<file>: field 'X': expected ..."):
//   normalizer      null, NFC, or a Sequence of NFC
//   pre_tokenizer   ByteLevel (last), optionally after Split (Regex/String pattern, behavior
//                   Isolated or Removed, invert false) and Digits, in a Sequence
//   model           BPE with vocab and merges ("a b" strings or ["a", "b"] pairs), ignore_merges,
//                   unk_token; no dropout, subword prefix/suffix or byte_fallback
//   added_tokens    special and non-special, lstrip/rstrip/single_word false
//   post_processor  null, ByteLevel, TemplateProcessing (the `single` template gives the ids
//                   added with add_special), or a Sequence of these
//   decoder         null, ByteLevel, or a Sequence of ByteLevel
// BOS/EOS ids come from tokenizer_config.json next to the file when it names them; otherwise BOS
// is the template's single prefix token.
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "nlohmann/json.hpp"
#include "runtime/tokenizer/byte_level_bpe_tokenizer.h"
#include "runtime/tokenizer/string_map.h"
#include "runtime/tokenizer/tokenizer.h"

namespace ts {

namespace {

using Json = nlohmann::json;
using tok::SplitBehavior;

StatusOr<Json> ReadJson(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open the file"));
  std::stringstream buffer;
  buffer << in.rdbuf();
  Json json = Json::parse(buffer.str(), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return BadInput(path, ": expected valid JSON");
  return json;
}

// Field access that never throws.
const Json* Find(const Json& obj, std::string_view key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}
bool IsNullOrAbsent(const Json& obj, std::string_view key) {
  const Json* v = Find(obj, key);
  return v == nullptr || v->is_null();
}
std::string TypeOf(const Json& obj) {
  const Json* t = Find(obj, "type");
  return (t != nullptr && t->is_string()) ? t->get<std::string>() : std::string();
}
bool BoolOr(const Json& obj, std::string_view key, bool fallback) {
  const Json* v = Find(obj, key);
  return (v != nullptr && v->is_boolean()) ? v->get<bool>() : fallback;
}

// Escapes a literal for PCRE2.
std::string RegexQuote(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (std::string_view("\\^$.|?*+()[]{}-/#&~ ").find(c) != std::string_view::npos) {
      out.push_back('\\');
    }
    out.push_back(c);
  }
  return out;
}

class HfLoader {
 public:
  explicit HfLoader(std::string path) : path_(std::move(path)) {}

  StatusOr<std::unique_ptr<Tokenizer>> Load();

 private:
  template <typename... Args>
  Status Bad(const std::string& field, const Args&... args) const {
    return BadInput(path_, ": field '", field, "': expected ", args...);
  }
  Status LoadNormalizer(const Json& node, const std::string& field);
  Status AddPreTokenizer(const Json& node, const std::string& field, bool last);
  Status LoadModel(const Json& root);
  Status LoadAddedTokens(const Json& root);
  Status LoadPostProcessor(const Json& node, const std::string& field);
  Status CheckDecoder(const Json& node, const std::string& field);
  void LoadTokenizerConfig();
  int32_t IdOf(const std::string& text) const;

  std::string path_;
  tok::ByteLevelBpeSpec spec_;
  bool has_byte_level_ = false;
  tok::StringMap<int32_t> added_ids_;
  std::vector<std::pair<std::string, int32_t>> vocab_;
};

Status HfLoader::LoadNormalizer(const Json& node, const std::string& field) {
  if (node.is_null()) return absl::OkStatus();
  const std::string type = TypeOf(node);
  if (type == "NFC") {
    spec_.normalizer = tok::Normalizer(tok::Normalizer::Kind::kNfc);
    return absl::OkStatus();
  }
  if (type == "Sequence") {
    const Json* list = Find(node, "normalizers");
    if (list == nullptr || !list->is_array()) {
      return Bad(absl::StrCat(field, ".normalizers"), "a list");
    }
    for (size_t i = 0; i < list->size(); ++i) {
      const std::string item_field = absl::StrCat(field, ".normalizers[", i, "]");
      if (TypeOf((*list)[i]) != "NFC") {
        return Bad(item_field, "NFC (the only normalizer supported in a Sequence), got \"",
                   TypeOf((*list)[i]), "\"");
      }
      TS_RETURN_IF_ERROR(LoadNormalizer((*list)[i], item_field));
    }
    return absl::OkStatus();
  }
  return Bad(field, "null, NFC or a Sequence of NFC (normalizer \"", type, "\" is not supported)");
}

Status HfLoader::AddPreTokenizer(const Json& node, const std::string& field, bool last) {
  const std::string type = TypeOf(node);
  if (has_byte_level_) return Bad(field, "no pre-tokenizer after ByteLevel");
  if (type == "Sequence") {
    const Json* list = Find(node, "pretokenizers");
    if (list == nullptr || !list->is_array() || list->empty()) {
      return Bad(absl::StrCat(field, ".pretokenizers"), "a non-empty list");
    }
    for (size_t i = 0; i < list->size(); ++i) {
      TS_RETURN_IF_ERROR(AddPreTokenizer((*list)[i], absl::StrCat(field, ".pretokenizers[", i, "]"),
                                         last && i + 1 == list->size()));
    }
    return absl::OkStatus();
  }
  if (type == "ByteLevel") {
    if (BoolOr(node, "add_prefix_space", false)) {
      return Bad(absl::StrCat(field, ".add_prefix_space"), "false (true is not supported)");
    }
    if (BoolOr(node, "use_regex", true)) {
      TS_RETURN_IF_ERROR(spec_.pre_tokenizer.AddStep(tok::kGpt2Pattern, SplitBehavior::kIsolated,
                                                     absl::StrCat(path_, ": field '", field, "'")));
    }
    has_byte_level_ = true;
    return absl::OkStatus();
  }
  if (type == "Split") {
    const Json* pattern = Find(node, "pattern");
    std::string regex;
    if (const Json* r = pattern ? Find(*pattern, "Regex") : nullptr; r && r->is_string()) {
      regex = r->get<std::string>();
    } else if (const Json* s = pattern ? Find(*pattern, "String") : nullptr; s && s->is_string()) {
      regex = RegexQuote(s->get<std::string>());
    } else {
      return Bad(absl::StrCat(field, ".pattern"), "{\"Regex\": ...} or {\"String\": ...}");
    }
    if (BoolOr(node, "invert", false)) return Bad(absl::StrCat(field, ".invert"), "false");
    const Json* behavior = Find(node, "behavior");
    const std::string b = (behavior && behavior->is_string()) ? behavior->get<std::string>() : "";
    if (b != "Isolated" && b != "Removed") {
      return Bad(absl::StrCat(field, ".behavior"), "\"Isolated\" or \"Removed\", got \"", b, "\"");
    }
    return spec_.pre_tokenizer.AddStep(
        regex, b == "Isolated" ? SplitBehavior::kIsolated : SplitBehavior::kRemoved,
        absl::StrCat(path_, ": field '", field, ".pattern'"));
  }
  if (type == "Digits") {
    return spec_.pre_tokenizer.AddStep(BoolOr(node, "individual_digits", false)
                                           ? tok::kDigitsIndividualPattern
                                           : tok::kDigitsContiguousPattern,
                                       SplitBehavior::kIsolated, path_);
  }
  return Bad(field, "Sequence, Split, Digits or ByteLevel, got \"", type, "\"");
}

Status HfLoader::LoadModel(const Json& root) {
  const Json* model = Find(root, "model");
  if (model == nullptr || !model->is_object()) return Bad("model", "an object");
  const Json* type = Find(*model, "type");
  if (type != nullptr && !(type->is_string() && type->get<std::string>() == "BPE")) {
    return Bad("model.type", "\"BPE\", got ", type->dump());
  }
  if (!IsNullOrAbsent(*model, "dropout")) return Bad("model.dropout", "null");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const Json* v = Find(*model, key);
    if (v != nullptr && !v->is_null() && !(v->is_string() && v->get<std::string>().empty())) {
      return Bad(absl::StrCat("model.", key), "null or \"\"");
    }
  }
  if (BoolOr(*model, "byte_fallback", false)) {
    return Bad("model.byte_fallback", "false (only byte-level BPE is supported)");
  }
  spec_.model.set_ignore_merges(BoolOr(*model, "ignore_merges", false));

  const Json* vocab = Find(*model, "vocab");
  if (vocab == nullptr || !vocab->is_object() || vocab->empty()) {
    return Bad("model.vocab", "an object of token -> id");
  }
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 ||
        it.value().get<int64_t>() > (1 << 30)) {
      return Bad(absl::StrCat("model.vocab[\"", it.key(), "\"]"), "a non-negative id");
    }
    const int32_t id = it.value().get<int32_t>();
    spec_.model.AddToken(it.key(), id);
    vocab_.emplace_back(it.key(), id);
  }
  const Json* merges = Find(*model, "merges");
  if (merges == nullptr || !merges->is_array()) return Bad("model.merges", "a list");
  for (size_t i = 0; i < merges->size(); ++i) {
    const Json& m = (*merges)[i];
    std::string left, right;
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) {
        return Bad(absl::StrCat("model.merges[", i, "]"), "\"left right\", got \"", s, "\"");
      }
      left = s.substr(0, space);
      right = s.substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0].get<std::string>();
      right = m[1].get<std::string>();
    } else {
      return Bad(absl::StrCat("model.merges[", i, "]"), "\"left right\" or [left, right], got ",
                 m.dump());
    }
    if (!spec_.model.AddMerge(left, right)) {
      return Bad(absl::StrCat("model.merges[", i, "]"),
                 "two vocabulary tokens whose concatenation is a token, got \"", left, "\" + \"",
                 right, "\"");
    }
  }
  if (const Json* unk = Find(*model, "unk_token"); unk != nullptr && !unk->is_null()) {
    const int32_t id = unk->is_string() ? spec_.model.TokenId(unk->get<std::string>()) : -1;
    if (id < 0) return Bad("model.unk_token", "null or a vocabulary token");
    spec_.model.set_unk_id(id);
  }
  return absl::OkStatus();
}

Status HfLoader::LoadAddedTokens(const Json& root) {
  const Json* added = Find(root, "added_tokens");
  if (added == nullptr || added->is_null()) return absl::OkStatus();
  if (!added->is_array()) return Bad("added_tokens", "a list");
  std::vector<std::pair<std::string, int32_t>> as_pieces;
  for (size_t i = 0; i < added->size(); ++i) {
    const Json& t = (*added)[i];
    const std::string field = absl::StrCat("added_tokens[", i, "]");
    const Json* id = Find(t, "id");
    const Json* content = Find(t, "content");
    if (id == nullptr || !id->is_number_integer() || id->get<int64_t>() < 0 ||
        id->get<int64_t>() > (1 << 30)) {
      return Bad(field + ".id", "a non-negative id");
    }
    if (content == nullptr || !content->is_string() || content->get<std::string>().empty()) {
      return Bad(field + ".content", "a non-empty string");
    }
    for (const char* key : {"lstrip", "rstrip", "single_word"}) {
      if (BoolOr(t, key, false)) return Bad(absl::StrCat(field, ".", key), "false");
    }
    const std::string text = content->get<std::string>();
    const int32_t token_id = id->get<int32_t>();
    const bool special = BoolOr(t, "special", false);
    if (BoolOr(t, "normalized", !special)) {
      // Matched on normalized text, so written in normalized form (as HF does).
      std::string storage;
      spec_.normalized_literals.Add(std::string(spec_.normalizer.Apply(text, &storage)), token_id);
    } else {
      spec_.raw_literals.Add(text, token_id);
    }
    added_ids_.insert_or_assign(text, token_id);
    if (static_cast<size_t>(token_id) >= spec_.pieces.size()) {
      spec_.pieces.resize(token_id + 1);
      spec_.piece_is_literal.resize(token_id + 1, false);
      spec_.is_control.resize(token_id + 1, false);
    }
    spec_.pieces[token_id] = text;
    spec_.piece_is_literal[token_id] = true;
    spec_.is_control[token_id] = special;
  }
  return absl::OkStatus();
}

Status HfLoader::LoadPostProcessor(const Json& node, const std::string& field) {
  if (node.is_null()) return absl::OkStatus();
  const std::string type = TypeOf(node);
  if (type == "ByteLevel") return absl::OkStatus();  // offsets only
  if (type == "Sequence") {
    const Json* list = Find(node, "processors");
    if (list == nullptr || !list->is_array())
      return Bad(absl::StrCat(field, ".processors"), "a list");
    for (size_t i = 0; i < list->size(); ++i) {
      TS_RETURN_IF_ERROR(
          LoadPostProcessor((*list)[i], absl::StrCat(field, ".processors[", i, "]")));
    }
    return absl::OkStatus();
  }
  if (type != "TemplateProcessing") {
    return Bad(field, "null, ByteLevel, TemplateProcessing or Sequence, got \"", type, "\"");
  }
  const Json* single = Find(node, "single");
  const Json* specials = Find(node, "special_tokens");
  if (single == nullptr || !single->is_array())
    return Bad(absl::StrCat(field, ".single"), "a list");
  spec_.prefix_ids.clear();
  spec_.suffix_ids.clear();
  bool seen_sequence = false;
  for (size_t i = 0; i < single->size(); ++i) {
    const Json& item = (*single)[i];
    const std::string item_field = absl::StrCat(field, ".single[", i, "]");
    if (Find(item, "Sequence") != nullptr) {
      seen_sequence = true;
      continue;
    }
    const Json* st = Find(item, "SpecialToken");
    const Json* name = st ? Find(*st, "id") : nullptr;
    if (name == nullptr || !name->is_string()) {
      return Bad(item_field, "{\"Sequence\": ...} or {\"SpecialToken\": {\"id\": ...}}");
    }
    const Json* entry = specials ? Find(*specials, name->get<std::string>()) : nullptr;
    const Json* ids = entry ? Find(*entry, "ids") : nullptr;
    if (ids == nullptr || !ids->is_array()) {
      return Bad(absl::StrCat(field, ".special_tokens[\"", name->get<std::string>(), "\"].ids"),
                 "a list of ids");
    }
    for (const Json& id : *ids) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0) {
        return Bad(absl::StrCat(field, ".special_tokens[\"", name->get<std::string>(), "\"].ids"),
                   "non-negative ids");
      }
      (seen_sequence ? spec_.suffix_ids : spec_.prefix_ids).push_back(id.get<int32_t>());
    }
  }
  return absl::OkStatus();
}

Status HfLoader::CheckDecoder(const Json& node, const std::string& field) {
  if (node.is_null()) return absl::OkStatus();
  const std::string type = TypeOf(node);
  if (type == "ByteLevel") return absl::OkStatus();
  if (type == "Sequence") {
    const Json* list = Find(node, "decoders");
    if (list == nullptr || !list->is_array())
      return Bad(absl::StrCat(field, ".decoders"), "a list");
    for (size_t i = 0; i < list->size(); ++i) {
      TS_RETURN_IF_ERROR(CheckDecoder((*list)[i], absl::StrCat(field, ".decoders[", i, "]")));
    }
    return absl::OkStatus();
  }
  return Bad(field, "null, ByteLevel or a Sequence of ByteLevel, got \"", type, "\"");
}

int32_t HfLoader::IdOf(const std::string& text) const {
  if (auto it = added_ids_.find(text); it != added_ids_.end()) return it->second;
  return spec_.model.TokenId(text);
}

void HfLoader::LoadTokenizerConfig() {
  const size_t slash = path_.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "" : path_.substr(0, slash + 1);
  std::ifstream probe(dir + "tokenizer_config.json");
  if (!probe) return;
  StatusOr<Json> config = ReadJson(dir + "tokenizer_config.json");
  if (!config.ok()) return;  // optional: a broken one is ignored, tokenizer.json still works
  const auto token_of = [&](std::string_view key) -> int32_t {
    const Json* v = Find(*config, key);
    if (v != nullptr && v->is_object()) v = Find(*v, "content");
    return (v != nullptr && v->is_string()) ? IdOf(v->get<std::string>()) : -1;
  };
  if (int32_t bos = token_of("bos_token"); bos >= 0) spec_.bos_id = bos;
  if (int32_t eos = token_of("eos_token"); eos >= 0) spec_.eos_id = eos;
}

StatusOr<std::unique_ptr<Tokenizer>> HfLoader::Load() {
  TS_ASSIGN_OR_RETURN(Json root, ReadJson(path_));
  if (!root.is_object()) return BadInput(path_, ": expected a JSON object at the top level");
  if (const Json* normalizer = Find(root, "normalizer"); normalizer != nullptr) {
    TS_RETURN_IF_ERROR(LoadNormalizer(*normalizer, "normalizer"));
  }
  TS_RETURN_IF_ERROR(LoadModel(root));
  if (const Json* pre = Find(root, "pre_tokenizer"); pre != nullptr && !pre->is_null()) {
    TS_RETURN_IF_ERROR(AddPreTokenizer(*pre, "pre_tokenizer", true));
  }
  if (!has_byte_level_) {
    return Bad("pre_tokenizer", "a ByteLevel pre-tokenizer (only byte-level BPE is supported)");
  }
  // Vocabulary pieces first; added tokens may extend or override them.
  for (const auto& [text, id] : vocab_) {
    if (static_cast<size_t>(id) >= spec_.pieces.size()) spec_.pieces.resize(id + 1);
    spec_.pieces[id] = text;
  }
  spec_.piece_is_literal.assign(spec_.pieces.size(), false);
  spec_.is_control.assign(spec_.pieces.size(), false);
  TS_RETURN_IF_ERROR(LoadAddedTokens(root));
  if (const Json* post = Find(root, "post_processor"); post != nullptr) {
    TS_RETURN_IF_ERROR(LoadPostProcessor(*post, "post_processor"));
  }
  if (const Json* decoder = Find(root, "decoder"); decoder != nullptr) {
    TS_RETURN_IF_ERROR(CheckDecoder(*decoder, "decoder"));
  }
  const int64_t n = static_cast<int64_t>(spec_.pieces.size());
  for (int32_t id : spec_.prefix_ids) {
    if (id >= n) return Bad("post_processor", "special token ids below ", n, ", got ", id);
  }
  for (int32_t id : spec_.suffix_ids) {
    if (id >= n) return Bad("post_processor", "special token ids below ", n, ", got ", id);
  }
  if (spec_.prefix_ids.size() == 1) spec_.bos_id = spec_.prefix_ids[0];
  LoadTokenizerConfig();
  return std::unique_ptr<Tokenizer>(new tok::ByteLevelBpeTokenizer(std::move(spec_)));
}

}  // namespace

StatusOr<std::unique_ptr<Tokenizer>> LoadHfTokenizer(const std::string& tokenizer_json_path) {
  return HfLoader(tokenizer_json_path).Load();
}

}  // namespace ts
