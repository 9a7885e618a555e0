// Up-front memory check for a job: the KV cache and scratch of a long generation are allocated
// once at start, so a job that cannot fit fails before prefill with a clear message instead of
// being killed midway (issue 3 item 9).
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace ts {

// Bytes this process can still allocate: MemAvailable of /proc/meminfo, lowered by a cgroup v2
// limit (memory.max - memory.current) when one applies. -1 when neither can be read.
int64_t AvailableMemoryBytes();

// OkStatus when `needed_bytes` fits in AvailableMemoryBytes() (or when that is unknown);
// otherwise BadInput: "<what> needs X GiB but Y GiB are available (<hint>)".
Status CheckMemory(int64_t needed_bytes, const std::string& what, const std::string& hint);

}  // namespace ts
