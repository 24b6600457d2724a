// `metareward serve`: an error answered to the client in OpenAI's shape,
// {"error": {"message", "type", "param", "code"}}, with its HTTP status.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace mr::core::serve {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status,
           std::string message,
           std::string type = "invalid_request_error",
           std::optional<std::string> param = std::nullopt,
           std::optional<std::string> code = std::nullopt)
      : std::runtime_error(message),
        status_(status),
        type_(std::move(type)),
        param_(std::move(param)),
        code_(std::move(code)) {}

  int status() const { return status_; }
  const std::string& type() const { return type_; }
  const std::optional<std::string>& param() const { return param_; }
  const std::optional<std::string>& code() const { return code_; }

  /// 400 invalid_request_error naming the request field `param`.
  static ApiError bad_field(const std::string& param, const std::string& message) {
    return ApiError(400, message, "invalid_request_error", param);
  }

 private:
  int status_;
  std::string type_;
  std::optional<std::string> param_;
  std::optional<std::string> code_;
};

/// {"error": {...}} for an error.
inline nlohmann::json error_body(const std::string& message,
                                 const std::string& type,
                                 const std::optional<std::string>& param = std::nullopt,
                                 const std::optional<std::string>& code = std::nullopt) {
  nlohmann::json e = {{"message", message},
                      {"type", type},
                      {"param", param ? nlohmann::json(*param) : nlohmann::json(nullptr)},
                      {"code", code ? nlohmann::json(*code) : nlohmann::json(nullptr)}};
  return {{"error", e}};
}

inline nlohmann::json error_body(const ApiError& e) {
  return error_body(e.what(), e.type(), e.param(), e.code());
}

/// `j` as JSON text; invalid UTF-8 (a byte-level model can produce any bytes) becomes U+FFFD
/// instead of throwing.
inline std::string dump_json(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace mr::core::serve
