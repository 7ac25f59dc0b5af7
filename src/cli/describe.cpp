// Placeholder until the command lands; replaced by its real implementation.
#include "cli/commands.hpp"
#include "fcn/error.hpp"

namespace fcn::cli {

void add_describe_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("describe", "(not built yet)");
  cmd->callback([] { throw Error("this command is not built yet"); });
}

}  // namespace fcn::cli
