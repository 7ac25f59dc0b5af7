#pragma once
// Every environment variable fcn reads, in one table: its name, the values
// it takes and what it does. Reads go through env_value (a variable missing
// from the table is a programming error), and check_environment, called at
// start-up, rejects a set variable whose value is not one of its choices, so
// a typo (FCN_WINOGRAD=off) is an error instead of a silent default.
#include <optional>
#include <string>
#include <vector>

namespace fcn {

struct EnvVariable {
  std::string name;
  std::vector<std::string> choices;  // empty: any value (names set by launchers and libraries)
  std::string help;                  // one line: what each value does
};

// The table, for --help and docs.
const std::vector<EnvVariable>& environment_variables();

// The variable's value when set and non-empty. Throws when `name` is not in
// the table, or when its value is not one of its choices.
std::optional<std::string> env_value(const std::string& name);
// A 0/1 switch: `fallback` when unset.
bool env_flag(const std::string& name, bool fallback);

// Throws an Error naming the first set variable with a value outside its
// choices ("FCN_WINOGRAD=off: expected one of 0, 2, 4").
void check_environment();

// The table as lines for --help: "  FCN_WINOGRAD=0|2|4  ...".
std::string environment_help();

}  // namespace fcn
