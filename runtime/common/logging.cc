#include "runtime/common/logging.h"

#include <memory>

#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"

namespace ts {

void SetupLogging(absl::string_view level, int rank) {
  auto logger = spdlog::get("tokenswift");
  if (logger == nullptr) logger = spdlog::stderr_color_mt("tokenswift");
  logger->set_pattern("[%H:%M:%S.%e] [%^%l%$] [rank " + std::to_string(rank) + "] %v");
  logger->set_level(spdlog::level::from_str(std::string(level)));
  spdlog::set_default_logger(logger);
}

void SetLogRank(int rank) {
  auto logger = spdlog::get("tokenswift");
  if (logger == nullptr) return;
  logger->set_pattern("[%H:%M:%S.%e] [%^%l%$] [rank " + std::to_string(rank) + "] %v");
}

}  // namespace ts
