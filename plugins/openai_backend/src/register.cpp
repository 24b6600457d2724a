// The `openai` backend's config schema and registration.
#include "metareward/openai_backend/openai_backend.hpp"

namespace mr::plugins::openai_backend {

using mr::sdk::ParamSpec;

mr::sdk::Schema openai_backend_schema() {
  return {
      ParamSpec::string_list("base_url", {},
                             "Server URL(s) up to /v1, e.g. \"http://127.0.0.1:8000/v1\"; a list "
                             "spreads requests over several servers (data parallel). Empty "
                             "with `launch` (the managed servers' URLs)."),
      ParamSpec::string_("model", "",
                         "Served model name sent with every request; \"\" = the first id "
                         "/v1/models lists (re-read after every restart)."),
      ParamSpec::string_("api_key_env", "",
                         "Name of the environment variable holding the API key (sent as a "
                         "bearer token); the key itself never goes into configs, logs or "
                         "manifests. \"\" = no key."),
      ParamSpec::string_("dialect", "auto",
                         "Server family, deciding which extra sampling keys are pinned to "
                         "neutral values (top_k, min_p, repetition penalties, ...); auto reads "
                         "/v1/models owned_by (vllm, sglang, llamacpp, metareward; else openai).")
          .one_of({"auto", "metareward", "vllm", "sglang", "llama.cpp", "openai"}),
      ParamSpec::int_("concurrency", 16, "Requests in flight at once, over all servers.")
          .range(1, 4096),
      ParamSpec::int_("max_in_flight_per_server", 0,
                      "Most requests in flight on one server; 0 = no limit beyond concurrency.")
          .range(0, 4096),
      ParamSpec::float_("timeout_s", 600, "Read/write timeout of one request, in seconds.")
          .range(0, std::nullopt, true),
      ParamSpec::float_("connect_timeout_s", 10, "TCP/TLS connect timeout, in seconds.")
          .range(0, std::nullopt, true),
      ParamSpec::int_("max_retries", 6,
                      "Retries of a request after a connection error, timeout, 429, 5xx or a "
                      "malformed body (other 4xx are the request's own error, recorded in its "
                      "row); past them the stage stops with a resumable error.")
          .range(0, 1000),
      ParamSpec::float_("retry_base_delay_s", 0.5,
                        "First backoff delay; doubles per retry, with jitter; a Retry-After "
                        "header takes precedence.")
          .range(0, std::nullopt),
      ParamSpec::float_("retry_max_delay_s", 30, "Cap of the backoff delay.")
          .range(0, std::nullopt),
      ParamSpec::string_("tokenizer", "",
                         "Local tokenizer directory (tokenizer.json [+ tokenizer_config.json]) "
                         "for count_tokens and completion token counts; \"\" = the server's "
                         "/tokenize endpoint where it has one (vLLM, llama.cpp, metareward), else "
                         "unavailable (-1)."),
      ParamSpec::string_("chat_template", "auto",
                         "With `tokenizer`: the chat template score() renders prompts with "
                         "(auto, llama3, chatml, plain), as the torch backend's key.")
          .one_of({"auto", "llama3", "chatml", "plain"}),
      ParamSpec::string_("ca_bundle", "",
                         "CA certificate file for https URLs; \"\" = OpenSSL's default paths."),
      ParamSpec::string_list(
          "launch", {},
          "Managed servers: the command that starts one, e.g. [\"vllm\", \"serve\", \"{model}\", "
          "\"--port\", \"{port}\"] or [\"{metareward}\", \"serve\", \"--model\", \"{model}\", "
          "\"--port\", \"{port}\"]; {model} = `path` (then each new checkpoint), {port}, {host}, "
          "{index} (0-based server number), {threads} (the run's threads), {metareward} = this "
          "executable. Output goes to "
          "RUN/servers/NAME-K.log."),
      ParamSpec::int_("servers", 1, "Managed servers to start (with `launch`).").range(1, 256),
      ParamSpec::string_("host", "127.0.0.1", "Host the managed servers bind ({host})."),
      ParamSpec::int_("port", 0,
                      "Port of managed server 0 (server K gets port + K); 0 = free ports.")
          .range(0, 65535),
      ParamSpec::string_("path", "",
                         "Checkpoint the managed servers start on ({model}); reload() restarts "
                         "them on each new checkpoint."),
      ParamSpec::float_("ready_timeout_s", 900,
                        "How long a managed server may take to answer /v1/models.")
          .range(0, std::nullopt, true),
      ParamSpec::bool_("stop_during_training", false,
                       "Stop the managed servers while another model trains (frees the "
                       "accelerator); they restart on the new checkpoint."),
      ParamSpec::int_("max_restarts", 3,
                      "Restarts of a managed server whose process died mid-stage.")
          .range(0, 1000),
  };
}

void register_openai_backend_plugins(mr::sdk::Registrar& r) {
  r.add<mr::sdk::ModelBackend>(
      "openai", kLibraryVersion,
      "Any OpenAI-compatible server (vLLM, SGLang, llama.cpp, hosted APIs, metareward serve): "
      "concurrent requests over one or many servers with retries, sampling pinned per dialect, "
      "optionally started and restarted by metareward itself (managed servers)",
      openai_backend_schema(), [](mr::sdk::HostContext& ctx) { return make_openai_backend(ctx); });
}

}  // namespace mr::plugins::openai_backend
