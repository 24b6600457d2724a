// The plugin-call guard (plugin_call.hpp): what any exception becomes, and what its message names.
#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>

#include "metareward/core/plugin_call.hpp"
#include "metareward/sdk/error.hpp"

namespace sdk = mr::sdk;
using mr::core::guarded;
using mr::core::PluginCall;

namespace {

struct OwnError : std::exception {
  const char* what() const noexcept override { return "own failure"; }
};

PluginCall site() {
  PluginCall c;
  c.plugin = "my_rubric";
  c.kind = "judge rubric";
  c.library = "/x/libmy.so";
  c.call = "parse";
  c.stage = "judge, iteration 2";
  c.item = "judgment 'p3/r1/j2'";
  return c;
}

/// The message `f`'s exception has after the guard, and that it is of type E.
template <class E, class F>
std::string message_after_guard(F&& f) {
  try {
    guarded(site(), std::forward<F>(f));
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("wrong exception type out of the guard: " << e.what());
  }
  FAIL("the guard swallowed the exception");
  return {};
}

}  // namespace

TEST_CASE("plugin-call guard: every exception names plugin, library, call, stage and item",
          "[unit][guard]") {
  const std::string where =
      "judge rubric 'my_rubric' (library /x/libmy.so), parse() at stage judge, iteration 2, on "
      "judgment 'p3/r1/j2': ";
  CHECK(message_after_guard<sdk::PluginError>([] { return std::stod("x"); }) ==
        where + "std::invalid_argument: stod");
  CHECK(message_after_guard<sdk::PluginError>([] { throw std::out_of_range("vector"); }) ==
        where + "std::out_of_range: vector");
  CHECK(message_after_guard<sdk::PluginError>([] { throw 42; }) ==
        where + "threw a non-standard exception of type 'int'");
  CHECK(message_after_guard<sdk::PluginError>([] { throw OwnError(); }) ==
        where + "(anonymous namespace)::OwnError: own failure");
  // SDK errors keep their type (their exit codes differ); the message gains the call site.
  CHECK(message_after_guard<sdk::DataError>([] { throw sdk::DataError("bad row"); }) ==
        where + "bad row");
  CHECK(message_after_guard<sdk::ConfigError>([] { throw sdk::ConfigError("bad key"); }) ==
        where + "bad key");
  CHECK(message_after_guard<sdk::BackendError>([] { throw sdk::BackendError("oom"); }) ==
        where + "oom");
  // An interruption is not a failure: it passes unchanged.
  CHECK(message_after_guard<sdk::Interrupted>([] { throw sdk::Interrupted("stop"); }) == "stop");
  // A value passes through.
  CHECK(guarded(site(), [] { return 7; }) == 7);
}

TEST_CASE("plugin-call guard: the description leaves out what the call does not have",
          "[unit][guard]") {
  PluginCall c = site();
  c.stage.clear();
  c.item.clear();
  CHECK(c.describe() == "judge rubric 'my_rubric' (library /x/libmy.so), parse()");
  CHECK(c.with_item("response 'a'").at("actor, iteration 1").describe() ==
        "judge rubric 'my_rubric' (library /x/libmy.so), parse() at stage actor, iteration 1, on "
        "response 'a'");
}
