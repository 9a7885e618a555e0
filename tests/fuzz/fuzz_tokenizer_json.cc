// libFuzzer target: HF tokenizer.json bytes. Loading must give a tokenizer or a BadInput status;
// a loaded tokenizer must encode and decode a fixed mixed-script text without crashing, and
// every id it returns must be inside its vocabulary. Anything else is a bug.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "runtime/tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/ts_fuzz_tokenizer_" + std::to_string(getpid()) + ".json";
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  ts::StatusOr<std::unique_ptr<ts::Tokenizer>> tok = ts::LoadHfTokenizer(path);
  if (!tok.ok()) {
    if (tok.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
    return 0;
  }
  const std::string text = "Hello, world! 12345 caf\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd \xff  \n\t<s>";
  for (bool special : {false, true}) {
    for (int32_t id : (*tok)->Encode(text, special)) {
      if (id < 0 || id >= (*tok)->VocabSize()) std::abort();
      (void)(*tok)->TokenBytes(id);
    }
  }
  return 0;
}
