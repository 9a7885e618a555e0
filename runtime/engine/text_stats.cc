#include "runtime/engine/text_stats.h"

#include <sys/resource.h>

#include <string_view>
#include <unordered_set>

namespace ts {

double DistinctN(std::span<const int32_t> tokens, int n) {
  if (n <= 0 || tokens.size() < static_cast<size_t>(n)) return 0.0;
  const size_t total = tokens.size() - n + 1;
  // Each n-gram is keyed by its bytes in place: exact, and nothing is copied.
  std::unordered_set<std::string_view> seen;
  seen.reserve(total);
  const char* bytes = reinterpret_cast<const char*>(tokens.data());
  for (size_t i = 0; i < total; ++i) {
    seen.insert(std::string_view(bytes + i * sizeof(int32_t), n * sizeof(int32_t)));
  }
  return static_cast<double>(seen.size()) / static_cast<double>(total);
}

int64_t PeakRssBytes() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

}  // namespace ts
