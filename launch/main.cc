// tokenswift: the command-line entry point. Subcommands live in launch/cmd_*.cc; this file parses,
// runs one, and turns its Status into a one-line message and an exit code (2 bad input,
// 1 runtime failure).
#include <cstdio>
#include <exception>
#include <new>
#include <string>

#include "CLI/CLI.hpp"
#include "launch/cli_common.h"
#include "launch/commands.h"
#include "runtime/common/logging.h"

namespace {

// CLI11 2.1 converts 64-bit integers with strtoll/strtoull unchecked: "-5" wraps into an unsigned
// flag and "99999999999999999999" saturates. Every integer flag of every subcommand gets an exact
// check (narrower types CLI11 already checks; ranges are the commands' own).
void CheckIntegerFlags(CLI::App* app) {
  for (CLI::Option* opt : app->get_options()) {
    const std::string type = opt->get_type_name();
    if (type == "UINT") opt->check(ts::cli::IntegerIn<uint64_t>().description(""));
    if (type == "INT") opt->check(ts::cli::IntegerIn<int64_t>().description(""));
  }
  for (CLI::App* sub : app->get_subcommands({})) CheckIntegerFlags(sub);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tokenswift: ultra-long text generation with TokenSwift, exactly lossless"};
  app.require_subcommand(1);
  app.fallthrough();  // --log-level after the subcommand too, as llama.cpp users type it
  std::string log_level = "warn";
  ts::SetupLogging(log_level, /*rank=*/0);
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
      ->each([](const std::string& level) { ts::SetupLogging(level, /*rank=*/0); })
      ->capture_default_str();

  ts::Status result;
  ts::cli::RegisterGenerate(app, &result);
  ts::cli::RegisterScore(app, &result);
  ts::cli::RegisterInspect(app, &result);
  ts::cli::RegisterMakeTestModel(app, &result);
  ts::cli::RegisterBench(app, &result);
  ts::cli::RegisterTrainHeads(app, &result);
  ts::cli::RegisterServe(app, &result);
  ts::cli::RegisterClients(app, &result);
  CheckIntegerFlags(&app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    std::fprintf(stderr, "tokenswift: error: %s\n", e.what());
    return 2;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "tokenswift: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {  // system_error (threads), filesystem_error, ...
    std::fprintf(stderr, "tokenswift: error: %s\n", e.what());
    return 1;
  }
  if (!result.ok()) {
    std::fprintf(stderr, "tokenswift: error: %s\n", std::string(result.message()).c_str());
    return ts::ExitCodeFor(result);
  }
  return 0;
}
