#include "runtime/engine/memory_budget.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_format.h"

namespace ts {
namespace {

int64_t ReadCgroupValue(const std::string& path) {
  std::ifstream in(path);
  std::string v;
  if (!(in >> v) || v == "max") return -1;
  try {
    return std::stoll(v);
  } catch (...) {
    return -1;
  }
}

}  // namespace

int64_t AvailableMemoryBytes() {
  int64_t available = -1;
  std::ifstream meminfo("/proc/meminfo");
  std::string line;
  while (std::getline(meminfo, line)) {
    std::istringstream fields(line);
    std::string key;
    int64_t kib = 0;
    if (fields >> key >> kib && key == "MemAvailable:") {
      available = kib * 1024;
      break;
    }
  }
  // cgroup v2: this process's group limit, when set.
  const int64_t max = ReadCgroupValue("/sys/fs/cgroup/memory.max");
  const int64_t current = ReadCgroupValue("/sys/fs/cgroup/memory.current");
  if (max > 0 && current >= 0) {
    const int64_t room = max > current ? max - current : 0;
    available = available < 0 ? room : std::min(available, room);
  }
  return available;
}

Status CheckMemory(int64_t needed_bytes, const std::string& what, const std::string& hint) {
  const int64_t available = AvailableMemoryBytes();
  if (available < 0 || needed_bytes <= available) return absl::OkStatus();
  constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
  return BadInput(what, " needs ", absl::StrFormat("%.2f", needed_bytes / kGiB), " GiB but ",
                  absl::StrFormat("%.2f", available / kGiB), " GiB are available (", hint, ")");
}

}  // namespace ts
