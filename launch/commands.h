// Subcommands of the `tokenswift` CLI. Each Register* adds one subcommand to `app`; when it
// runs, its callback stores its outcome in *result, which main() turns into a message and an
// exit code (2 for bad input, 1 for runtime failure).
#pragma once

#include "CLI/CLI.hpp"
#include "common/status.h"

namespace ts::cli {

void RegisterGenerate(CLI::App& app, Status* result);
void RegisterScore(CLI::App& app, Status* result);
void RegisterInspect(CLI::App& app, Status* result);
void RegisterMakeTestModel(CLI::App& app, Status* result);
void RegisterBench(CLI::App& app, Status* result);
void RegisterTrainHeads(CLI::App& app, Status* result);
void RegisterServe(CLI::App& app, Status* result);
// submit, stream, status, cancel: clients of serve.
void RegisterClients(CLI::App& app, Status* result);

}  // namespace ts::cli
