/// @file error.hpp
/// The SDK's exception hierarchy and the MR_CHECK macro. Every error the host or a plugin reports
/// to a user is one of these; messages say what failed, where (file, TOML path, plugin) and
/// what was expected.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace mr::sdk {

/// Base of every metareward error. Thrown by value, caught by const reference.
/// Messages are complete sentences fragments meant for the end user, without a trailing newline.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  /// Out-of-line key function: gives the class one vtable/typeinfo home in libmr_sdk so catching
  /// an error thrown from a plugin works across shared-library boundaries.
  ~Error() override;
};

/// A configuration problem: unknown key, wrong type, out-of-range value, or a semantic
/// constraint a plugin checks in its constructor. The message names the file, line and TOML path.
class ConfigError : public Error {
 public:
  using Error::Error;
  ~ConfigError() override;
};

/// A plugin library could not be loaded, registered or constructed. The message names the file.
class PluginError : public Error {
 public:
  using Error::Error;
  ~PluginError() override;
};

/// A model backend failed (bad checkpoint, tokenizer file, out of memory, ...).
class BackendError : public Error {
 public:
  using Error::Error;
  ~BackendError() override;
};

/// Bad input data (JSONL rows, artifacts) that cannot be skipped safely.
class DataError : public Error {
 public:
  using Error::Error;
  ~DataError() override;
};

/// A collective operation across the ranks of a distributed run failed: a rank exited, hung past
/// the configured timeout, or the ranks disagree. The message names the rank(s) when known.
class DistributedError : public Error {
 public:
  using Error::Error;
  ~DistributedError() override;
};

/// Work stopped early because the user asked (SIGINT/SIGTERM, TrainingJob::stop_requested). What
/// was finished has been saved; the run can be resumed.
class Interrupted : public Error {
 public:
  using Error::Error;
  ~Interrupted() override;
};

namespace detail {
/// Concatenates the streamable arguments into one string (used by MR_CHECK).
template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}
}  // namespace detail

}  // namespace mr::sdk

/// Throws `ErrorType` with the concatenation of the message arguments when `cond` is false.
/// Usage: `MR_CHECK_AS(mr::sdk::ConfigError, rho < 0.5, "rho must be < 0.5, got ", rho);`
#define MR_CHECK_AS(ErrorType, cond, ...)                                 \
  do {                                                                    \
    if (!(cond)) throw ErrorType(::mr::sdk::detail::concat(__VA_ARGS__)); \
  } while (false)

/// Throws mr::sdk::Error with the concatenated message when `cond` is false.
#define MR_CHECK(cond, ...) MR_CHECK_AS(::mr::sdk::Error, cond, __VA_ARGS__)
