// `tokenswift inspect`: a model file's metadata.
#include <cstdio>
#include <string>

#include "launch/cli_common.h"
#include "launch/commands.h"
#include "runtime/model/inspect.h"

namespace ts::cli {

void RegisterInspect(CLI::App& app, Status* result) {
  auto path = std::make_shared<std::string>(DefaultModelPath());
  CLI::App* sub = app.add_subcommand("inspect", "print a model file's metadata");
  sub->add_option("model", *path, "GGUF file or HF model directory")->capture_default_str();
  sub->callback([path, result] {
    StatusOr<std::string> text = InspectModel(*path);
    if (!text.ok()) {
      *result = text.status();
      return;
    }
    std::fputs(text->c_str(), stdout);
  });
}

}  // namespace ts::cli
