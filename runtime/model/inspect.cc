#include "runtime/model/inspect.h"

#include <map>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "runtime/model/loader.h"
#include "runtime/model/weight_names.h"

namespace ts {
namespace {

const char* RopeTypeName(RopeScaling::Type t) {
  switch (t) {
    case RopeScaling::Type::kDefault:
      return "default";
    case RopeScaling::Type::kLinear:
      return "linear";
    case RopeScaling::Type::kLlama3:
      return "llama3";
    case RopeScaling::Type::kYarn:
      return "yarn";
  }
  return "?";
}

std::string RopeLine(const ModelConfig& c) {
  const RopeScaling& r = c.rope_scaling;
  std::string s = absl::StrFormat("theta %g, %s pairs, scaling %s", c.rope_theta,
                                  c.rope_style == RopeStyle::kNeox ? "neox" : "interleaved",
                                  RopeTypeName(r.type));
  switch (r.type) {
    case RopeScaling::Type::kDefault:
      break;
    case RopeScaling::Type::kLinear:
      absl::StrAppendFormat(&s, " (factor %g)", r.factor);
      break;
    case RopeScaling::Type::kLlama3:
      absl::StrAppendFormat(&s, " (factor %g, low %g, high %g, original %d)", r.factor,
                            r.low_freq_factor, r.high_freq_factor, r.original_max_position);
      break;
    case RopeScaling::Type::kYarn:
      absl::StrAppendFormat(&s, " (factor %g, original %d, beta %g/%g, attention %g)", r.factor,
                            r.original_max_position, r.beta_fast, r.beta_slow, r.attention_factor);
      break;
  }
  if (!r.freq_factors.empty()) {
    absl::StrAppend(&s, ", ", r.freq_factors.size(), " frequency factors");
  }
  return s;
}

std::string HumanBytes(uint64_t n) {
  if (n >= (uint64_t{1} << 30)) return absl::StrFormat("%.2f GiB", n / 1073741824.0);
  if (n >= (uint64_t{1} << 20)) return absl::StrFormat("%.2f MiB", n / 1048576.0);
  if (n >= 1024) return absl::StrFormat("%.2f KiB", n / 1024.0);
  return absl::StrCat(n, " B");
}

}  // namespace

StatusOr<std::string> InspectModel(const std::string& path) {
  TS_ASSIGN_OR_RETURN(std::unique_ptr<LoadedModel> m, OpenModelFiles(path));
  const Status bound = BindWeights(m.get());
  const ModelConfig& c = m->config;
  std::string out;
  absl::StrAppendFormat(&out, "model:          %s\n", m->source);
  absl::StrAppendFormat(&out, "format:         %s\n", m->format);
  absl::StrAppendFormat(&out, "architecture:   %s\n", c.arch);
  absl::StrAppendFormat(&out, "layers:         %d\n", c.n_layers);
  absl::StrAppendFormat(&out, "hidden size:    %d\n", c.hidden_size);
  absl::StrAppendFormat(&out, "intermediate:   %d\n", c.intermediate_size);
  absl::StrAppendFormat(&out, "heads:          %d (kv %d, head dim %d)\n", c.n_heads, c.n_kv_heads,
                        c.head_dim);
  absl::StrAppendFormat(&out, "context:        %d\n", c.max_position);
  absl::StrAppendFormat(&out, "rms eps:        %g\n", c.rms_eps);
  absl::StrAppendFormat(&out, "rope:           %s\n", RopeLine(c));
  absl::StrAppendFormat(&out, "embeddings:     %s\n", c.tie_embeddings ? "tied" : "separate");
  absl::StrAppendFormat(&out, "qkv bias:       %s\n", c.qkv_bias ? "yes" : "no");
  std::string vocab = absl::StrCat(c.vocab_size);
  if (m->gguf_vocab) {
    absl::StrAppend(&vocab, " (tokenizer ", m->gguf_vocab->model,
                    m->gguf_vocab->pre.empty() ? "" : "/", m->gguf_vocab->pre, ", ",
                    m->gguf_vocab->merges.size(), " merges)");
  } else if (!m->tokenizer_json.empty()) {
    absl::StrAppend(&vocab, " (", m->tokenizer_json, ")");
  } else {
    absl::StrAppend(&vocab, " (no tokenizer)");
  }
  absl::StrAppendFormat(&out, "vocab:          %s\n", vocab);
  absl::StrAppendFormat(&out, "bos / eos:      %d / %s%s\n", c.bos_id,
                        c.eos_ids.empty() ? "none" : absl::StrJoin(c.eos_ids, ","),
                        c.add_bos ? " (adds bos)" : "");

  std::map<std::string, std::pair<int, uint64_t>> by_dtype;  // name -> (count, bytes)
  uint64_t total = 0;
  for (const TensorInfo& t : m->tensors) {
    auto& [count, bytes] = by_dtype[std::string(GetDTypeInfo(t.dtype).name)];
    ++count;
    bytes += t.nbytes;
    total += t.nbytes;
  }
  std::vector<std::string> parts;
  for (const auto& [name, cb] : by_dtype) {
    parts.push_back(absl::StrCat(name, " ", cb.first, " (", HumanBytes(cb.second), ")"));
  }
  absl::StrAppendFormat(&out, "tensors:        %d: %s\n", m->tensors.size(),
                        absl::StrJoin(parts, ", "));
  absl::StrAppendFormat(&out, "tensor bytes:   %d (%s)\n", total, HumanBytes(total));
  absl::StrAppendFormat(&out, "weights:        %s\n",
                        bound.ok() ? "ok" : std::string(bound.message()));
  return out;
}

}  // namespace ts
