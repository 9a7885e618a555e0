#include "runtime/tokenizer/pre_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <utility>

#include "spdlog/spdlog.h"

namespace ts::tok {

struct PreTokenizer::Step {
  pcre2_code* code = nullptr;
  SplitBehavior behavior = SplitBehavior::kIsolated;
  ~Step() { pcre2_code_free(code); }
};

namespace {

// Scratch for one Split call: match data and a JIT stack big enough for long whitespace runs.
class MatchScratch {
 public:
  MatchScratch()
      : match_data_(pcre2_match_data_create(1, nullptr)),
        context_(pcre2_match_context_create(nullptr)),
        jit_stack_(pcre2_jit_stack_create(32 * 1024, 16 * 1024 * 1024, nullptr)) {
    pcre2_jit_stack_assign(context_, nullptr, jit_stack_);
  }
  ~MatchScratch() {
    pcre2_jit_stack_free(jit_stack_);
    pcre2_match_context_free(context_);
    pcre2_match_data_free(match_data_);
  }
  pcre2_match_data* match_data() { return match_data_; }
  pcre2_match_context* context() { return context_; }

 private:
  pcre2_match_data* match_data_;
  pcre2_match_context* context_;
  pcre2_jit_stack* jit_stack_;
};

void SplitOne(const pcre2_code* code, SplitBehavior behavior, std::string_view piece,
              MatchScratch* scratch, std::vector<std::string_view>* out) {
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
  size_t last = 0;   // end of the previous match
  size_t start = 0;  // where the next search starts
  while (start < piece.size()) {
    const int rc = pcre2_match(code, subject, piece.size(), start, PCRE2_NO_UTF_CHECK,
                               scratch->match_data(), scratch->context());
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      // Only a resource limit can get here; the rest of the piece stays whole.
      spdlog::warn("tokenizer: regex match failed ({}); piece kept whole", rc);
      break;
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(scratch->match_data());
    const size_t m_begin = ov[0], m_end = ov[1];
    if (m_end == m_begin) {  // empty match: step over one character
      start = m_end + 1;
      while (start < piece.size() && (static_cast<unsigned char>(piece[start]) & 0xC0) == 0x80) {
        ++start;
      }
      continue;
    }
    if (m_begin > last) out->push_back(piece.substr(last, m_begin - last));
    if (behavior == SplitBehavior::kIsolated)
      out->push_back(piece.substr(m_begin, m_end - m_begin));
    last = start = m_end;
  }
  if (last < piece.size()) out->push_back(piece.substr(last));
}

}  // namespace

PreTokenizer::PreTokenizer() = default;
PreTokenizer::~PreTokenizer() = default;
PreTokenizer::PreTokenizer(PreTokenizer&&) noexcept = default;
PreTokenizer& PreTokenizer::operator=(PreTokenizer&&) noexcept = default;

Status PreTokenizer::AddStep(std::string_view pattern, SplitBehavior behavior,
                             std::string_view where) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof(message));
    return BadInput(std::string(where), ": expected a regex PCRE2 accepts, got an error at offset ",
                    error_offset, ": ", reinterpret_cast<const char*>(message));
  }
  // Without JIT (unsupported platform) pcre2_match interprets; results are the same.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  auto step = std::make_unique<Step>();
  step->code = code;
  step->behavior = behavior;
  steps_.push_back(std::move(step));
  return absl::OkStatus();
}

void PreTokenizer::Split(std::string_view text, std::vector<std::string_view>* pieces) const {
  if (text.empty()) return;
  if (steps_.empty()) {
    pieces->push_back(text);
    return;
  }
  MatchScratch scratch;
  std::vector<std::string_view> current{text};
  std::vector<std::string_view> next;
  for (size_t i = 0; i < steps_.size(); ++i) {
    std::vector<std::string_view>* out = (i + 1 == steps_.size()) ? pieces : &next;
    next.clear();
    for (std::string_view piece : current) {
      SplitOne(steps_[i]->code, steps_[i]->behavior, piece, &scratch, out);
    }
    if (out == &next) std::swap(current, next);
  }
}

}  // namespace ts::tok
