// The environment table: every variable fcn reads is listed, values outside
// a variable's choices are errors (in the library and at fcn's start-up),
// and --help shows the table.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "fcn/core/environment.hpp"
#include "fcn/core/error.hpp"

using namespace fcn;

namespace {

// Sets a variable for one scope and puts the old value back.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    const char* old = std::getenv(name);
    if (old) saved_ = old;
    had_ = old != nullptr;
    setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (had_) setenv(name_.c_str(), saved_.c_str(), 1);
    else unsetenv(name_.c_str());
  }

 private:
  std::string name_, saved_;
  bool had_ = false;
};

std::string run_fcn(const std::string& prefix, const std::string& args, int& status) {
  // one file per process: ctest runs the test cases in parallel
  const std::string log =
      (std::filesystem::temp_directory_path() / ("fcn_test_environment_" + std::to_string(getpid()) + ".txt")).string();
  status = std::system((prefix + " " + FCN_BINARY + " " + args + " >" + log + " 2>&1").c_str());
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  std::filesystem::remove(log);
  return text.str();
}

}  // namespace

TEST_CASE("environment: values outside a variable's choices are errors naming variable and choices") {
  {
    ScopedEnv winograd("FCN_WINOGRAD", "off");
    CHECK_THROWS_WITH(env_value("FCN_WINOGRAD"), Catch::Contains("FCN_WINOGRAD=off: expected one of 0, 2, 4"));
    CHECK_THROWS_AS(check_environment(), Error);
  }
  {
    ScopedEnv winograd("FCN_WINOGRAD", "4");
    CHECK(env_value("FCN_WINOGRAD") == std::optional<std::string>("4"));
    CHECK_NOTHROW(check_environment());
  }
  {
    ScopedEnv empty("FCN_PROFILE", "");
    CHECK_FALSE(env_value("FCN_PROFILE"));
    CHECK(env_flag("FCN_PROFILE", true));
  }
  {
    ScopedEnv profile("FCN_PROFILE", "yes");
    CHECK_THROWS_AS(env_flag("FCN_PROFILE", false), Error);
  }
  // free-form variables (set by launchers and libraries) take any value
  ScopedEnv coretype("OPENBLAS_CORETYPE", "Haswell");
  CHECK(env_value("OPENBLAS_CORETYPE") == std::optional<std::string>("Haswell"));
  // reading a variable the table does not list is a programming error
  CHECK_THROWS_WITH(env_value("FCN_NOT_A_VARIABLE"), Catch::Contains("not in fcn's table"));
}

TEST_CASE("environment: every variable the sources read is in the table, and --help lists them all") {
  // every FCN_/OMP_/OPENBLAS_/ONEDNN_/PMI variable named in a string literal under src/
  std::set<std::string> named;
  const std::regex literal("\"((FCN|OMP|OPENBLAS|ONEDNN|OMPI|PMI|PMIX)_[A-Z_]+)\"");
  for (const auto& entry : std::filesystem::recursive_directory_iterator(std::string(FCN_SOURCE_DIR) + "/src")) {
    std::ifstream in(entry.path());
    std::stringstream text;
    text << in.rdbuf();
    const std::string source = text.str();
    for (std::sregex_iterator it(source.begin(), source.end(), literal), end; it != end; ++it) named.insert((*it)[1]);
  }
  REQUIRE(named.count("FCN_WINOGRAD") == 1);  // the scan finds what it should
  std::set<std::string> listed;
  for (const EnvVariable& variable : environment_variables()) listed.insert(variable.name);
  for (const auto& name : named) {
    INFO(name << " is read under src/ but missing from environment_variables()");
    CHECK(listed.count(name) == 1);
  }
  int status = 0;
  const std::string help = run_fcn("", "--help", status);
  CHECK(status == 0);
  for (const auto& name : listed) {
    INFO(name << " missing from fcn --help");
    CHECK(help.find(name) != std::string::npos);
  }
}

TEST_CASE("environment: fcn stops at start-up with one line on a mistyped value") {
  int status = 0;
  const std::string output = run_fcn("FCN_WINOGRAD=off", "--version", status);
  CHECK(status != 0);
  CHECK(output.rfind("error: FCN_WINOGRAD=off: expected one of 0, 2, 4 (", 0) == 0);
  CHECK(output.find('\n') == output.size() - 1);  // one line
}
