// Logging setup: spdlog to stderr with level and rank prefix, e.g. "[info] [rank 0] loaded ...".
#pragma once

#include <string>

#include "absl/strings/string_view.h"

namespace ts {

// level: "trace", "debug", "info", "warn", "error", "off". Calling it again changes the level and
// rank.
void SetupLogging(absl::string_view level, int rank);
// Keeps the level, changes the rank in the prefix (once a communicator knows it).
void SetLogRank(int rank);

}  // namespace ts
