// A human-readable summary of a model file or directory (`tokenswift inspect`): format,
// architecture and dimensions, rope, vocabulary, tensors by dtype, total bytes, and whether the
// weights bind to the config (a model that fails to bind is still described).
#pragma once

#include <string>

#include "common/status.h"

namespace ts {

// Fails only when the files cannot be opened or parsed (BadInput naming the file and field).
StatusOr<std::string> InspectModel(const std::string& path);

}  // namespace ts
