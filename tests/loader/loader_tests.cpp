// Plugin loading: every failure mode reports its exact message, libraries stay loaded while their
// objects live, directory scans skip bad files, and the search path has a fixed order.
#include <dlfcn.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "metareward/core/logging.hpp"
#include "metareward/core/plugin_registry.hpp"
#include "metareward/sdk/error.hpp"

namespace fs = std::filesystem;
using mr::core::PluginRegistry;
using mr::sdk::PluginError;

namespace {

/// The path as the registry reports it (absolute, symlinks resolved).
std::string canon(const char* path) {
  return fs::weakly_canonical(fs::absolute(path)).string();
}

/// The message `load_library(path)` throws, or "" when it does not throw.
std::string load_error(PluginRegistry& registry, const fs::path& path) {
  try {
    registry.load_library(path);
  } catch (const PluginError& e) {
    return e.what();
  }
  return "";
}

std::shared_ptr<mr::core::PluginHostContext> context_for(const std::string& plugin,
                                                         std::int64_t scale) {
  mr::sdk::Table values{{"scale", mr::sdk::Value(scale)}};
  return std::make_shared<mr::core::PluginHostContext>(
      plugin, mr::sdk::Config("judge_rubric", values, 1), 7, fs::path(), 1);
}

/// Redirects the default spdlog logger into a string for the lifetime of the object.
class CapturedLog {
 public:
  CapturedLog() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(text_);
    auto logger = std::make_shared<spdlog::logger>("captured", sink);
    logger->set_pattern("%l: %v");
    logger->set_level(spdlog::level::trace);
    spdlog::set_default_logger(logger);
  }
  ~CapturedLog() { spdlog::set_default_logger(previous_); }
  std::string str() const { return text_.str(); }

 private:
  std::shared_ptr<spdlog::logger> previous_;
  std::ostringstream text_;
};

/// A fresh empty directory under the system temp dir, removed on destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& tag)
      : path_(fs::temp_directory_path() / ("mr_loader_" + tag + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void register_static_rubric(mr::sdk::Registrar& r) {
  r.add<mr::sdk::JudgeRubric>("static_rubric", "0.0.1", "Registered in-process",
                              {mr::sdk::ParamSpec::int_("scale", 5, "Highest score.")},
                              [](mr::sdk::HostContext&) -> std::unique_ptr<mr::sdk::JudgeRubric> {
                                throw mr::sdk::ConfigError("static factory ran");
                              });
}

void register_static_fixture_ok(mr::sdk::Registrar& r) {
  register_static_rubric(r);  // Would be fine on its own ...
  r.add<mr::sdk::Optimizer>(
      "fixture_ok", "0.0.1", "... but this name is taken", {},
      [](mr::sdk::HostContext&) -> std::unique_ptr<mr::sdk::Optimizer> { return nullptr; });
}

}  // namespace

TEST_CASE("loader: a valid plugin library registers its plugins", "[loader]") {
  PluginRegistry registry;
  registry.load_library(MR_FIXTURE_OK);

  const auto* plugin = registry.find("fixture_ok");
  REQUIRE(plugin != nullptr);
  CHECK(plugin->descriptor.kind() == mr::sdk::PluginKind::JudgeRubric);
  CHECK(plugin->descriptor.version == "1.2.3");
  CHECK(plugin->library_name == "mr-fixture-ok");
  CHECK(plugin->library_version == "0.0.1");
  CHECK(plugin->library_path.string() == canon(MR_FIXTURE_OK));
  CHECK(registry.names(mr::sdk::PluginKind::JudgeRubric) == std::vector<std::string>{"fixture_ok"});
  CHECK(registry.names(mr::sdk::PluginKind::Optimizer).empty());
  CHECK(registry.find("fixture_missing") == nullptr);

  SECTION("the plugin constructs with its validated config") {
    auto rubric = mr::core::create_plugin<mr::sdk::JudgeRubric>(*plugin, context_for("x", 9));
    CHECK(rubric->score_range().max == 9.0);
    CHECK(rubric->parse("fine.\nScore: 4").score == 4.0);
  }
  SECTION("loading the same file again, under another spelling, is a no-op") {
    const fs::path ok = MR_FIXTURE_OK;
    registry.load_library(ok);
    registry.load_library(ok.parent_path() / "." / ok.filename());
    CHECK(registry.all().size() == 1);
  }
}

TEST_CASE("loader: a file that is not a shared library is rejected with dlerror's text",
          "[loader]") {
  PluginRegistry registry;
  SECTION("a text file named like a library") {
    // dlopen's own message is part of the text; ask dlopen for it the same way.
    void* handle = dlopen(canon(MR_FIXTURE_NOT_A_LIBRARY).c_str(), RTLD_NOW | RTLD_LOCAL);
    REQUIRE(handle == nullptr);
    const std::string dl_text = dlerror();
    CHECK(load_error(registry, MR_FIXTURE_NOT_A_LIBRARY) ==
          "plugin '" + canon(MR_FIXTURE_NOT_A_LIBRARY) + "': cannot load library: " + dl_text);
  }
  SECTION("a missing file") {
    const fs::path missing = fs::path(MR_FIXTURE_OK).parent_path() / "libdoes_not_exist.so";
    const std::string message = load_error(registry, missing);
    CHECK(message.rfind("plugin '" + missing.string() + "': cannot load library: ", 0) == 0);
    CHECK_THAT(message, Catch::Contains("No such file or directory"));
  }
  CHECK(registry.all().empty());
}

TEST_CASE("loader: a library without the entry symbol is not a metareward plugin", "[loader]") {
  PluginRegistry registry;
  CHECK(load_error(registry, MR_FIXTURE_NO_ENTRY) ==
        "plugin '" + canon(MR_FIXTURE_NO_ENTRY) +
            "': entry point 'mr_plugin_info' not found; is this a metareward plugin?");
}

TEST_CASE("loader: a plugin built for another API version is rejected", "[loader]") {
  PluginRegistry registry;
  CHECK(load_error(registry, MR_FIXTURE_BAD_API_VERSION) ==
        "plugin '" + canon(MR_FIXTURE_BAD_API_VERSION) + "': API version mismatch (plugin " +
            std::to_string(MR_PLUGIN_API_VERSION + 100) + ", host " +
            std::to_string(MR_PLUGIN_API_VERSION) + "); rebuild it against metareward SDK " +
            MR_SDK_VERSION);
  CHECK(registry.all().empty());
}

TEST_CASE("loader: a plugin with another build fingerprint is rejected", "[loader]") {
  PluginRegistry registry;
  CHECK(load_error(registry, MR_FIXTURE_BAD_FINGERPRINT) ==
        "plugin '" + canon(MR_FIXTURE_BAD_FINGERPRINT) +
            "': build fingerprint mismatch (plugin 'compiler=fixture-cc-1 cxx11abi=0 "
            "glibcxx_debug=0 torch=0.0.0 sdk=0', host '" +
            mr::core::host_fingerprint() +
            "'); rebuild it with the same compiler, libtorch and ABI flags as the host");
}

TEST_CASE("loader: host fingerprint records compiler, ABI, libtorch and SDK major", "[loader]") {
  const std::string fp = mr::core::host_fingerprint();
  CHECK_THAT(fp, Catch::StartsWith("compiler="));
  CHECK_THAT(fp, Catch::Contains(" cxx11abi="));
  CHECK_THAT(fp, Catch::Contains(" torch="));
  CHECK_THAT(fp, Catch::EndsWith(" sdk=" MR_SDK_VERSION_MAJOR_STR));
}

TEST_CASE("loader: an exception from the registration function is reported", "[loader]") {
  PluginRegistry registry;
  CHECK(load_error(registry, MR_FIXTURE_REGISTER_THROWS) ==
        "plugin '" + canon(MR_FIXTURE_REGISTER_THROWS) +
            "': registration failed: fixture registration exploded");
  CHECK(registry.all().empty());
}

TEST_CASE("loader: a duplicate plugin name rejects the whole second library", "[loader]") {
  PluginRegistry registry;
  registry.load_library(MR_FIXTURE_OK);
  CHECK(load_error(registry, MR_FIXTURE_DUPLICATE_NAME) ==
        "duplicate plugin name 'fixture_ok': registered by '" + canon(MR_FIXTURE_DUPLICATE_NAME) +
            "' and already by '" + canon(MR_FIXTURE_OK) + "'");
  SECTION("nothing of the rejected library is registered") {
    CHECK(registry.find("fixture_unique_name") == nullptr);
    CHECK(registry.find("fixture_ok")->descriptor.version == "1.2.3");
  }
  SECTION("a static registration clashing with a loaded library names both") {
    try {
      registry.register_static(&register_static_fixture_ok, "static-test");
      FAIL("duplicate accepted");
    } catch (const PluginError& e) {
      CHECK(std::string(e.what()) ==
            "duplicate plugin name 'fixture_ok': registered by "
            "'static-test' and already by '" +
                canon(MR_FIXTURE_OK) + "'");
    }
    CHECK(registry.find("static_rubric") == nullptr);
  }
}

TEST_CASE("loader: create_plugin reports factory failures and kind mismatches", "[loader]") {
  PluginRegistry registry;
  registry.load_library(MR_FIXTURE_FACTORY_THROWS);
  registry.load_library(MR_FIXTURE_OK);

  SECTION("a factory that throws") {
    const auto* plugin = registry.find("fixture_factory_throws");
    REQUIRE(plugin != nullptr);
    try {
      mr::core::create_plugin<mr::sdk::JudgeRubric>(*plugin, context_for("x", 5));
      FAIL("factory exception swallowed");
    } catch (const PluginError& e) {
      CHECK(std::string(e.what()) == "plugin 'fixture_factory_throws' from '" +
                                         canon(MR_FIXTURE_FACTORY_THROWS) +
                                         "' failed to construct: [judge_rubric.scale] must be odd");
    }
  }
  SECTION("asking for the wrong kind") {
    try {
      mr::core::create_plugin<mr::sdk::Optimizer>(*registry.find("fixture_ok"),
                                                  context_for("x", 5));
      FAIL("kind mismatch accepted");
    } catch (const PluginError& e) {
      CHECK(std::string(e.what()) == "plugin 'fixture_ok' from '" + canon(MR_FIXTURE_OK) +
                                         "' is of kind 'judge_rubric', not 'optimizer'");
    }
  }
}

TEST_CASE("loader: a plugin object keeps its library loaded after the registry is gone",
          "[loader]") {
  auto registry = std::make_unique<PluginRegistry>();
  registry->load_library(MR_FIXTURE_OK);
  auto rubric = mr::core::create_plugin<mr::sdk::JudgeRubric>(*registry->find("fixture_ok"),
                                                              context_for("x", 3));
  registry.reset();

  // RTLD_NOLOAD only finds a library that is still mapped; it does not load it again.
  void* handle = dlopen(canon(MR_FIXTURE_OK).c_str(), RTLD_NOW | RTLD_NOLOAD);
  CHECK(handle != nullptr);
  if (handle) dlclose(handle);
  // Virtual calls run code inside the plugin library.
  CHECK(rubric->score_range().max == 3.0);
  CHECK(rubric->parse("no verdict").error == "no 'Score:' line");
  CHECK(rubric->build_prompt({}, "resp").at(0).content == "Rate this response: resp");
}

TEST_CASE("loader: load_directory loads the good libraries and skips bad ones", "[loader]") {
  TempDir dir("scan");
  fs::copy_file(MR_FIXTURE_OK, dir.path() / "libgood.so");
  fs::copy_file(MR_FIXTURE_BAD_API_VERSION, dir.path() / "libbad_api.so");
  fs::copy_file(MR_FIXTURE_NOT_A_LIBRARY, dir.path() / "libnot_a_library.so");
  fs::copy_file(MR_FIXTURE_NO_ENTRY, dir.path() / "libno_entry.so");
  fs::copy_file(MR_FIXTURE_BAD_FINGERPRINT, dir.path() / "bad_fingerprint.so.txt");  // Not *.so.
  fs::create_directory(dir.path() / "sub.so");                                       // A dir.

  PluginRegistry registry;
  CapturedLog log;
  CHECK(registry.load_directory(dir.path()) == 1);
  REQUIRE(registry.find("fixture_ok") != nullptr);
  CHECK(registry.find("fixture_ok")->library_path.string() ==
        canon((dir.path() / "libgood.so").c_str()));

  const std::string text = log.str();
  CHECK_THAT(
      text, Catch::Contains("warning: skipping plugin '" + (dir.path() / "libbad_api.so").string() +
                            "': API version mismatch"));
  CHECK_THAT(text, Catch::Contains("warning: skipping plugin '" +
                                   (dir.path() / "libnot_a_library.so").string() +
                                   "': cannot load library"));
  CHECK_THAT(text, Catch::Contains("warning: skipping plugin '" +
                                   (dir.path() / "libno_entry.so").string() +
                                   "': entry point 'mr_plugin_info' not found"));
  CHECK_THAT(text, !Catch::Contains("bad_fingerprint"));

  SECTION("scanning again loads nothing new") {
    CHECK(registry.load_directory(dir.path()) == 0);
  }
  SECTION("a missing directory is skipped silently") {
    CHECK(registry.load_directory(dir.path() / "missing") == 0);
    CHECK_THAT(log.str(), !Catch::Contains("missing"));
  }
}

TEST_CASE("loader: in-process registration behaves like a library", "[loader]") {
  PluginRegistry registry;
  registry.register_static(&register_static_rubric, "static-test");
  const auto* plugin = registry.find("static_rubric");
  REQUIRE(plugin != nullptr);
  CHECK(plugin->library_path.empty());
  CHECK(plugin->library_name == "static-test");
  try {
    mr::core::create_plugin<mr::sdk::JudgeRubric>(*plugin, context_for("x", 5));
    FAIL("factory exception swallowed");
  } catch (const PluginError& e) {
    CHECK(std::string(e.what()) ==
          "plugin 'static_rubric' from 'static-test' failed to construct: static factory ran");
  }
  SECTION("registering the same function twice is a duplicate") {
    CHECK_THROWS_WITH(registry.register_static(&register_static_rubric, "static-again"),
                      "duplicate plugin name 'static_rubric': registered by 'static-again' and "
                      "already by 'static-test'");
  }
}

TEST_CASE("loader: the plugin search path has a fixed order and never includes cwd", "[loader]") {
  const char* old = std::getenv("METAREWARD_PLUGIN_PATH");
  const std::string saved = old ? old : "";
  ::setenv("METAREWARD_PLUGIN_PATH", "/opt/mr/a::/opt/mr/b:", 1);
  const auto path = mr::core::plugin_search_path({"/extra/one", "/opt/mr/a", "/extra/two"});
  if (old)
    ::setenv("METAREWARD_PLUGIN_PATH", saved.c_str(), 1);
  else
    ::unsetenv("METAREWARD_PLUGIN_PATH");

  // Test binaries are built into the build tree's bin/ like metareward itself, so the build
  // plugin dir comes first; the install dir is relative to the executable.
  const fs::path exe_dir = fs::read_symlink("/proc/self/exe").parent_path();
  REQUIRE(fs::equivalent(exe_dir, MR_BUILD_BIN_DIR));
  const std::vector<fs::path> expected = {
      MR_BUILD_PLUGIN_DIR, (exe_dir / ".." / MR_INSTALL_PLUGIN_DIR_REL).lexically_normal(),
      "/opt/mr/a",         "/opt/mr/b",
      "/extra/one",        "/extra/two"};
  CHECK(path == expected);
  for (const auto& p : path) CHECK(p != fs::current_path());
}

TEST_CASE("loader: a library can contribute CLI commands", "[loader]") {
  PluginRegistry registry;
  registry.load_library(MR_FIXTURE_COMMAND);
  const auto* command = registry.find_command("fixture-echo");
  REQUIRE(command != nullptr);
  CHECK(command->descriptor.summary == "Print the arguments (loader fixture).");
  CHECK(command->library_name == "mr-fixture-command");
  CHECK(command->library_path.string() == canon(MR_FIXTURE_COMMAND));
  REQUIRE(registry.commands().size() == 2);
  CHECK(registry.commands()[0]->descriptor.name == "fixture-echo");
  CHECK(registry.commands()[1]->descriptor.name == "fixture-run");
  CHECK(registry.find_command("fixture-missing") == nullptr);

  auto ctx = context_for("fixture-echo", 0);
  CHECK(command->descriptor.run({"fail"}, *ctx) == 3);
  CHECK_THROWS_AS(command->descriptor.run({"bad-config"}, *ctx), mr::sdk::ConfigError);

  SECTION("a second library with the same command name is rejected whole") {
    TempDir dir("dup-command");
    fs::copy_file(MR_FIXTURE_COMMAND, dir.path() / "libcopy.so");
    CHECK(load_error(registry, dir.path() / "libcopy.so") ==
          "duplicate command name 'fixture-echo': registered by '" +
              canon((dir.path() / "libcopy.so").c_str()) + "' and already by '" +
              canon(MR_FIXTURE_COMMAND) + "'");
    CHECK(registry.commands().size() == 2);
  }
}

namespace {
void register_command_twice(mr::sdk::Registrar& r) {
  auto run = [](const std::vector<std::string>&, mr::sdk::HostContext&) { return 0; };
  r.add_command({"twice", "first", run});
  r.add_command({"twice", "second", run});
}
}  // namespace

TEST_CASE("loader: one library registering a command name twice is rejected", "[loader]") {
  PluginRegistry registry;
  CHECK_THROWS_WITH(registry.register_static(&register_command_twice, "static-commands"),
                    "duplicate command name 'twice': registered by 'static-commands' and already "
                    "by 'static-commands'");
  CHECK(registry.find_command("twice") == nullptr);
}

TEST_CASE("loader: a plugin command runs other commands through HostContext::run_command",
          "[loader][run_command]") {
  PluginRegistry registry;
  registry.load_library(MR_FIXTURE_COMMAND);
  const auto* command = registry.find_command("fixture-run");
  REQUIRE(command != nullptr);
  auto ctx = context_for("fixture-run", 0);

  SECTION("without a runner (core used without the CLI) it is a PluginError naming the command") {
    const auto previous = mr::core::set_command_runner(nullptr);
    CHECK_THROWS_MATCHES(command->descriptor.run({"plugins", "list"}, *ctx), PluginError,
                         Catch::Message("cannot run 'metareward plugins list': no command runner "
                                        "is installed (run_command works in plugin commands "
                                        "started by the metareward CLI)"));
    mr::core::set_command_runner(previous);
  }
  SECTION("with a runner installed, the words reach it and its exit status comes back") {
    std::vector<std::vector<std::string>> seen;
    const auto previous = mr::core::set_command_runner([&](const std::vector<std::string>& args) {
      seen.push_back(args);
      return args.size() == 2 ? 5 : 0;
    });
    CHECK(command->descriptor.run({"plugins", "list"}, *ctx) == 5);
    CHECK(command->descriptor.run({"config", "check", "x.toml"}, *ctx) == 0);
    const auto mine = mr::core::set_command_runner(previous);
    CHECK(mine != nullptr);  // set_command_runner returned the runner it replaced
    REQUIRE(seen.size() == 2);
    CHECK(seen[0] == std::vector<std::string>{"plugins", "list"});
    CHECK(seen[1] == std::vector<std::string>{"config", "check", "x.toml"});
  }
}

TEST_CASE("loader: an evaluator plugin registers as the sixth kind and constructs",
          "[loader][evaluator]") {
  PluginRegistry registry;
  registry.load_library(MR_FIXTURE_EVALUATOR);
  const auto* plugin = registry.find("fixture_eval");
  REQUIRE(plugin != nullptr);
  CHECK(plugin->descriptor.kind() == mr::sdk::PluginKind::Evaluator);
  CHECK(std::string(mr::sdk::plugin_kind_name(plugin->descriptor.kind())) == "evaluator");
  CHECK(registry.names(mr::sdk::PluginKind::Evaluator) == std::vector<std::string>{"fixture_eval"});
  CHECK(registry.names(mr::sdk::PluginKind::JudgeRubric).empty());

  mr::sdk::Table values{{"prompts", mr::sdk::Value(1)},
                        {"max_new_tokens", mr::sdk::Value(4)},
                        {"fail_at", mr::sdk::Value(-1)},
                        {"nan_at", mr::sdk::Value(-1)}};
  auto ctx = std::make_shared<mr::core::PluginHostContext>(
      "evaluation", mr::sdk::Config("evaluation", values, 1), 7, fs::path(), 1);
  std::shared_ptr<mr::sdk::Evaluator> evaluator =
      mr::core::create_plugin<mr::sdk::Evaluator>(*plugin, ctx);
  CHECK(evaluator != nullptr);
  SECTION("asking for it as another kind names both kinds") {
    CHECK_THROWS_WITH(mr::core::create_plugin<mr::sdk::JudgeRubric>(*plugin, ctx),
                      Catch::Contains("'fixture_eval'") && Catch::Contains("evaluator") &&
                          Catch::Contains("not 'judge_rubric'"));
  }
}
