// The `openai` model backend (openai_backend.hpp): requests fanned out over worker threads and
// servers (server_set.hpp), managed servers (managed_server.hpp), the wire format
// (chat_protocol.hpp).
#include "metareward/openai_backend/openai_backend.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "chat_protocol.hpp"
#include "managed_server.hpp"
#include "metareward/chat/chat_template.hpp"
#include "metareward/sdk/error.hpp"
#include "metareward/tokenizer/tokenizer.hpp"
#include "server_set.hpp"

namespace mr::plugins::openai_backend {

namespace fs = std::filesystem;
using json = nlohmann::json;
using mr::sdk::BackendError;
using mr::sdk::ConfigError;

namespace {

/// The host's logger, serialized: worker threads log too.
class LockedLogger final : public mr::sdk::Logger {
 public:
  explicit LockedLogger(mr::sdk::Logger& inner) : inner_(inner) {}
  void log(mr::sdk::LogLevel level, std::string_view message) override {
    std::lock_guard lock(mutex_);
    inner_.log(level, message);
  }
  bool enabled(mr::sdk::LogLevel level) const override { return inner_.enabled(level); }

 private:
  mr::sdk::Logger& inner_;
  std::mutex mutex_;
};

/// One HTTP call of generate(): `call.n` samples of request `request`, written to its
/// completions from `first_sample` on.
struct Job {
  std::size_t request = 0;
  int first_sample = 0;
  SampleCall call;
};

class OpenAIBackend final : public mr::sdk::ModelBackend {
 public:
  explicit OpenAIBackend(mr::sdk::HostContext& ctx);
  ~OpenAIBackend() override { stop_servers(); }

  mr::sdk::ModelInfo info() const override;
  std::vector<mr::sdk::GenerationResult> generate(
      const std::vector<mr::sdk::GenerationRequest>& requests) override;
  std::int64_t count_tokens(std::string_view text) const override;
  std::vector<std::int64_t> tokenize(std::string_view text) const override;
  bool supports_prompt_text() const override { return true; }
  bool generates_remotely() const override { return true; }
  std::vector<mr::sdk::ScoreResult> score(
      const std::vector<mr::sdk::ScoreRequest>& requests) override;
  void reload(const fs::path& checkpoint_dir) override;
  void suspend() override;

 private:
  void start_servers(const std::string& model);
  void stop_servers();
  /// Servers running (after suspend()) and /v1/models read (model name, dialect, context).
  void ensure_ready();
  void ensure_ready_unguarded();
  /// The stage-stopping error for servers that stayed unavailable past the retry budget.
  [[noreturn]] void unavailable(const ServersUnavailable& e) const;
  /// Runs `worker` on `threads` threads (each with its own connections; inline for one) and
  /// rethrows the first failure they recorded in `failure`.
  void run_pool(std::size_t threads,
                const std::function<void(ConnectionCache&)>& worker,
                const std::exception_ptr& failure);
  void run_job(const Job& job,
               ConnectionCache& connections,
               std::vector<mr::sdk::GenerationResult>& results,
               std::mutex& results_mutex);
  /// The reply to `call`: its completions, or (4xx) nullopt with `error` set.
  std::optional<std::vector<mr::sdk::Completion>> send(const SampleCall& call,
                                                       ConnectionCache& connections,
                                                       std::string& error);
  std::optional<std::vector<std::int64_t>> server_tokens(std::string_view text,
                                                         std::int64_t* count) const;

  mr::sdk::HostContext& ctx_;
  std::string name_;
  mutable LockedLogger logger_;
  HttpOptions http_;
  RetryPolicy retry_;
  std::string configured_model_, model_;
  std::string dialect_setting_;
  Dialect dialect_ = Dialect::OpenAI;
  int concurrency_ = 16;
  int per_server_limit_ = 0;
  std::optional<mr::tokenizer::Tokenizer> tokenizer_;
  std::optional<mr::chat::ChatTemplate> template_;  ///< With `tokenizer`: score() renders.
  // Managed servers (empty without `launch`).
  std::vector<std::unique_ptr<ManagedServer>> managed_;
  std::string checkpoint_;  ///< {model} of the managed servers.
  bool stop_during_training_ = false;
  bool suspended_ = false;
  std::unique_ptr<ServerSet> servers_;
  bool probed_ = false;
  std::int64_t context_length_ = 0;
  std::atomic<bool> n_fallback_{false};
  std::once_flag n_fallback_logged_;
  mutable std::optional<bool> server_tokenize_;  ///< Unknown until first tried.
  mutable std::mutex tokenize_mutex_;
  mutable ConnectionCache main_connections_;  ///< For calls from the host's thread.
};

OpenAIBackend::OpenAIBackend(mr::sdk::HostContext& ctx) : ctx_(ctx), logger_(ctx.logger()) {
  const mr::sdk::Config& c = ctx.config();
  const std::string table = c.path().empty() ? std::string("models") : c.path();
  name_ = table.rfind("models.", 0) == 0 ? table.substr(7) : table;
  const std::string where = "[" + table + "] ";
  configured_model_ = c.get_string("model");
  dialect_setting_ = c.get_string("dialect");
  if (dialect_setting_ != "auto") dialect_ = parse_dialect(dialect_setting_);
  concurrency_ = static_cast<int>(c.get_int("concurrency"));
  per_server_limit_ = static_cast<int>(c.get_int("max_in_flight_per_server"));
  http_.timeout_s = c.get_float("timeout_s");
  http_.connect_timeout_s = c.get_float("connect_timeout_s");
  http_.ca_bundle = c.get_string("ca_bundle");
  retry_.max_retries = static_cast<int>(c.get_int("max_retries"));
  retry_.base_delay_s = c.get_float("retry_base_delay_s");
  retry_.max_delay_s = c.get_float("retry_max_delay_s");
  retry_.max_restarts = static_cast<int>(c.get_int("max_restarts"));
  stop_during_training_ = c.get_bool("stop_during_training");

  const std::string key_env = c.get_string("api_key_env");
  if (!key_env.empty()) {
    const char* key = std::getenv(key_env.c_str());
    if (key == nullptr || *key == '\0')
      throw ConfigError(where + "api_key_env = \"" + key_env +
                        "\": that environment variable is not set (or empty)");
    http_.api_key = key;
  }
  if (const std::string dir = c.get_string("tokenizer"); !dir.empty()) {
    const fs::path p(dir);
    tokenizer_.emplace(fs::is_directory(p) ? mr::tokenizer::Tokenizer::from_directory(p)
                                           : mr::tokenizer::Tokenizer::from_files(p, std::nullopt));
    template_.emplace(
        mr::chat::ChatTemplate::from_tokenizer(c.get_string("chat_template"), *tokenizer_));
  }

  const auto urls = c.get_string_list("base_url");
  const auto launch = c.get_string_list("launch");
  if (urls.empty() == launch.empty())
    throw ConfigError(where + (urls.empty() ? "needs base_url (the servers' URLs) or launch (a "
                                              "command that starts a server)"
                                            : "has both base_url and launch; the managed "
                                              "servers' URLs come from host and port"));
  std::vector<Endpoint> endpoints;
  std::vector<ManagedServer*> managed;
  if (!launch.empty()) {
    checkpoint_ = c.get_string("path");
    // Checked here so that a typo fails before anything starts.
    (void)substitute_launch(launch,
                            {{"model", checkpoint_},
                             {"port", "0"},
                             {"host", ""},
                             {"index", "0"},
                             {"threads", "1"},
                             {"metareward", ""}},
                            where + "launch");
    bool uses_model = false;
    for (const auto& a : launch) uses_model = uses_model || a.find("{model}") != std::string::npos;
    if (uses_model && checkpoint_.empty())
      throw ConfigError(where +
                        "launch uses {model} but path is not set (the checkpoint the "
                        "servers start on)");
    const std::string host = c.get_string("host");
    const int base_port = static_cast<int>(c.get_int("port"));
    const int count = static_cast<int>(c.get_int("servers"));
    const fs::path log_dir = ctx.run_dir().empty()
                                 ? fs::temp_directory_path() / ("metareward-servers-" + name_)
                                 : ctx.run_dir() / "servers";
    for (int k = 0; k < count; ++k) {
      const int port = base_port > 0 ? base_port + k : free_port(host);
      managed_.push_back(std::make_unique<ManagedServer>(
          launch, host, port, k, ctx.threads(),
          log_dir / (name_ + "-" + std::to_string(k) + ".log"), c.get_float("ready_timeout_s")));
      endpoints.push_back(managed_.back()->endpoint());
      managed.push_back(managed_.back().get());
    }
  } else {
    for (std::size_t i = 0; i < urls.size(); ++i)
      endpoints.push_back(
          parse_endpoint(urls[i], where + "base_url[" + std::to_string(i + 1) + "]"));
  }
  servers_ = std::make_unique<ServerSet>(std::move(endpoints), std::move(managed), http_, retry_,
                                         per_server_limit_, logger_,
                                         mr::sdk::derive_seed(ctx.seed(), 0x6f70656e6169ULL));
  if (!managed_.empty()) {
    start_servers(checkpoint_);
    ensure_ready();
  }
}

mr::sdk::ModelInfo OpenAIBackend::info() const {
  mr::sdk::ModelInfo info;
  info.name = name_;
  info.architecture = std::string("openai-compatible server (") + dialect_name(dialect_) +
                      (model_.empty() ? "" : ", model " + model_) + ")";
  info.path = !checkpoint_.empty() ? checkpoint_ : servers_->endpoint(0).base_url;
  info.context_length = context_length_;
  return info;
}

void OpenAIBackend::start_servers(const std::string& model) {
  std::vector<std::exception_ptr> errors(managed_.size());
  std::vector<std::thread> threads;
  for (std::size_t k = 0; k < managed_.size(); ++k)
    threads.emplace_back([&, k] {
      try {
        managed_[k]->start(model);
      } catch (...) {
        errors[k] = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  for (auto& e : errors)
    if (e) {
      stop_servers();
      std::rethrow_exception(e);
    }
  logger_.info("model '" + name_ + "': " + std::to_string(managed_.size()) +
               " managed server(s) up on " + model + " (" + managed_.front()->command_line() +
               "; logs in " + managed_.front()->log_file().parent_path().string() + ")");
}

void OpenAIBackend::stop_servers() {
  for (auto& m : managed_) m->stop();
}

void OpenAIBackend::ensure_ready() {
  try {
    ensure_ready_unguarded();
  } catch (const ServersUnavailable& e) {
    unavailable(e);
  }
}

void OpenAIBackend::unavailable(const ServersUnavailable& e) const {
  throw BackendError("model '" + name_ + "': " + e.what() +
                     "\nfix the server(s) and rerun with --resume (everything written so far "
                     "is kept)");
}

void OpenAIBackend::run_pool(std::size_t threads,
                             const std::function<void(ConnectionCache&)>& worker,
                             const std::exception_ptr& failure) {
  if (threads <= 1) {
    worker(main_connections_);
  } else {
    std::vector<std::thread> pool;
    std::vector<ConnectionCache> caches(threads);
    for (std::size_t t = 0; t < threads; ++t) pool.emplace_back(worker, std::ref(caches[t]));
    for (auto& t : pool) t.join();
  }
  if (!failure) return;
  try {
    std::rethrow_exception(failure);
  } catch (const ServersUnavailable& e) {
    unavailable(e);
  }
}

void OpenAIBackend::ensure_ready_unguarded() {
  if (suspended_) {
    start_servers(checkpoint_);
    suspended_ = false;
    probed_ = false;
  }
  if (probed_) return;
  const HttpReply reply =
      servers_->call(main_connections_, "/models", nullptr, [](const HttpReply& r) {
        const auto j = json::parse(r.body, nullptr, false);
        return j.is_object() ? std::string() : std::string("not JSON");
      });
  const std::string url = servers_->endpoint(0).base_url + "/models";
  std::vector<std::string> ids;
  std::string owned_by;
  if (reply.ok()) {
    const json j = json::parse(reply.body);
    if (j.contains("data") && j["data"].is_array())
      for (const json& m : j["data"])
        if (m.is_object() && m.contains("id") && m["id"].is_string()) {
          ids.push_back(m["id"].get<std::string>());
          if (ids.size() == 1) {
            owned_by = m.value("owned_by", std::string());
            if (m.contains("max_model_len") && m["max_model_len"].is_number_integer())
              context_length_ = m["max_model_len"].get<std::int64_t>();
          }
        }
  } else if (configured_model_.empty()) {
    throw BackendError("model '" + name_ + "': " + url + " answered " + describe_failure(reply) +
                       "; set `model` to the served name");
  }
  if (configured_model_.empty()) {
    if (ids.empty())
      throw BackendError("model '" + name_ + "': " + url +
                         " lists no model; set `model` to the served name");
    model_ = ids.front();
  } else {
    model_ = configured_model_;
    if (!ids.empty() && std::find(ids.begin(), ids.end(), model_) == ids.end()) {
      std::string list;
      for (std::size_t i = 0; i < ids.size() && i < 10; ++i) list += (i ? ", " : "") + ids[i];
      throw ConfigError("[models." + name_ + "] model = \"" + model_ + "\" is not served by " +
                        url + " (it serves: " + list + (ids.size() > 10 ? ", ..." : "") + ")");
    }
  }
  if (dialect_setting_ == "auto") dialect_ = dialect_from_owned_by(owned_by);
  probed_ = true;
  logger_.info("model '" + name_ + "': serving '" + model_ + "' from " +
               std::to_string(servers_->size()) + " server(s) (" + servers_->endpoint(0).base_url +
               (servers_->size() > 1 ? ", ..." : "") + "), dialect " + dialect_name(dialect_));
}

std::optional<std::vector<mr::sdk::Completion>> OpenAIBackend::send(const SampleCall& call,
                                                                    ConnectionCache& connections,
                                                                    std::string& error) {
  const std::string body = request_body(call, dialect_, model_).dump();
  const bool chat = call.request->prompt_text.empty();
  const int n = call.n;
  std::vector<mr::sdk::Completion> parsed;
  std::string ignored_n;
  const HttpReply reply =
      servers_->call(connections, request_path(call), &body, [&](const HttpReply& r) {
        try {
          parsed = parse_choices(r.body, n, chat);
          return std::string();
        } catch (const ChoiceCountError& e) {
          if (n == 1) return std::string(e.what());
          ignored_n = e.what();  // A server that ignores n: the caller falls back.
          return std::string();
        } catch (const mr::sdk::Error& e) {
          return std::string(e.what());
        }
      });
  if (!reply.ok()) {
    error = describe_failure(reply);
    return std::nullopt;
  }
  if (!ignored_n.empty()) {
    error = ignored_n;
    return std::nullopt;
  }
  return parsed;
}

void OpenAIBackend::run_job(const Job& job,
                            ConnectionCache& connections,
                            std::vector<mr::sdk::GenerationResult>& results,
                            std::mutex& results_mutex) {
  const mr::sdk::GenerationRequest& request = *job.call.request;
  auto store = [&](int first, std::vector<mr::sdk::Completion> completions) {
    std::lock_guard lock(results_mutex);
    auto& out = results[job.request].completions;
    for (std::size_t k = 0; k < completions.size(); ++k)
      out[static_cast<std::size_t>(first) + k] = std::move(completions[k]);
  };
  auto fail = [&](const std::string& why) {
    std::lock_guard lock(results_mutex);
    auto& r = results[job.request];
    if (r.error.empty()) r.error = why;
  };
  std::string error;
  std::optional<std::vector<mr::sdk::Completion>> got;
  if (job.call.n == 1 || !n_fallback_) got = send(job.call, connections, error);
  if (got) {
    store(job.first_sample, std::move(*got));
    return;
  }
  if (job.call.n == 1) {
    fail(error);
    return;
  }
  // A 4xx for n > 1, or fewer choices: servers without `n` (llama.cpp, some hosted models)
  // reject or ignore it. If one
  // sample goes through, send n single-sample requests with the derived per-sample seeds.
  SampleCall single{&request, 1, mr::sdk::derive_seed(request.seed, 0)};
  std::string single_error;
  auto first = send(single, connections, single_error);
  if (!first) {
    fail(error.empty() ? single_error : error);
    return;
  }
  if (!error.empty()) n_fallback_ = true;  // (empty: another job switched it on meanwhile)
  if (!error.empty())
    std::call_once(n_fallback_logged_, [&] {
      logger_.warn("model '" + name_ +
                   "': the server does not take n = " + std::to_string(job.call.n) + " (" + error +
                   "); sending one request per sample from now on, seeded with "
                   "derive_seed(seed, sample)");
    });
  store(0, std::move(*first));
  for (int s = 1; s < job.call.n; ++s) {
    SampleCall call{&request, 1, mr::sdk::derive_seed(request.seed, static_cast<std::uint64_t>(s))};
    auto one = send(call, connections, single_error);
    if (!one) {
      fail(single_error);
      return;
    }
    store(s, std::move(*one));
  }
}

std::vector<mr::sdk::GenerationResult> OpenAIBackend::generate(
    const std::vector<mr::sdk::GenerationRequest>& requests) {
  ensure_ready();
  std::vector<mr::sdk::GenerationResult> results(requests.size());
  std::vector<Job> jobs;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    const auto& r = requests[i];
    results[i].request_id = r.id;
    if (r.n < 1) {
      results[i].error = "n = " + std::to_string(r.n) + " (must be at least 1)";
      continue;
    }
    if (r.prompt_text.empty() && r.messages.empty()) {
      results[i].error = "the request has no messages";
      continue;
    }
    if (dialect_ == Dialect::OpenAI && r.sampling.top_k > 0) {
      results[i].error = "top_k = " + std::to_string(r.sampling.top_k) +
                         " cannot be sent to an OpenAI-dialect server (the API has no top_k)";
      continue;
    }
    results[i].completions.resize(static_cast<std::size_t>(r.n));
    if (n_fallback_ && r.n > 1) {
      for (int s = 0; s < r.n; ++s)
        jobs.push_back(
            {i, s, {&r, 1, mr::sdk::derive_seed(r.seed, static_cast<std::uint64_t>(s))}});
    } else {
      jobs.push_back({i, 0, {&r, r.n, r.seed}});
    }
  }
  std::atomic<std::size_t> next{0};
  std::atomic<bool> abort{false};
  std::exception_ptr failure;
  std::mutex results_mutex;
  auto worker = [&](ConnectionCache& connections) {
    while (!abort) {
      const std::size_t j = next++;
      if (j >= jobs.size()) return;
      try {
        run_job(jobs[j], connections, results, results_mutex);
      } catch (...) {
        std::lock_guard lock(results_mutex);
        if (!failure) failure = std::current_exception();
        abort = true;
      }
    }
  };
  run_pool(std::min<std::size_t>(static_cast<std::size_t>(concurrency_), jobs.size()), worker,
           failure);
  for (auto& r : results) {
    if (!r.error.empty()) {
      r.completions.clear();
      continue;
    }
    for (auto& c : r.completions)
      if (c.tokens < 0 && tokenizer_)
        c.tokens = static_cast<std::int64_t>(tokenizer_->encode(c.text).size());
  }
  return results;
}

std::optional<std::vector<std::int64_t>> OpenAIBackend::server_tokens(std::string_view text,
                                                                      std::int64_t* count) const {
  auto* self = const_cast<OpenAIBackend*>(this);
  std::lock_guard lock(tokenize_mutex_);
  if (server_tokenize_ == false) return std::nullopt;
  self->ensure_ready();
  json body = dialect_ == Dialect::LlamaCpp
                  ? json{{"content", text}, {"add_special", false}}
                  : json{{"model", model_}, {"prompt", text}, {"add_special_tokens", false}};
  const std::string s = body.dump();
  HttpReply reply;
  try {
    reply = servers_->call(
        main_connections_, "/tokenize", &s,
        [](const HttpReply& r) {
          const auto j = json::parse(r.body, nullptr, false);
          return j.is_object() && (j.contains("tokens") || j.contains("count"))
                     ? std::string()
                     : std::string("no tokens or count");
        },
        /*at_root=*/true);
  } catch (const ServersUnavailable& e) {
    unavailable(e);
  }
  if (!reply.ok()) {
    server_tokenize_ = false;
    logger_.info("model '" + name_ + "': the server has no usable /tokenize (" +
                 describe_failure(reply) +
                 "); token counts are unavailable (-1) unless "
                 "`tokenizer` is set");
    return std::nullopt;
  }
  server_tokenize_ = true;
  const json j = json::parse(reply.body);
  std::vector<std::int64_t> ids;
  if (j.contains("tokens") && j["tokens"].is_array())
    for (const json& t : j["tokens"])
      if (t.is_number_integer()) ids.push_back(t.get<std::int64_t>());
  *count = j.contains("count") && j["count"].is_number_integer()
               ? j["count"].get<std::int64_t>()
               : static_cast<std::int64_t>(ids.size());
  return ids;
}

std::int64_t OpenAIBackend::count_tokens(std::string_view text) const {
  if (tokenizer_) return static_cast<std::int64_t>(tokenizer_->encode(text).size());
  std::int64_t count = -1;
  if (!server_tokens(text, &count)) return -1;
  return count;
}

std::vector<std::int64_t> OpenAIBackend::tokenize(std::string_view text) const {
  if (tokenizer_) return tokenizer_->encode(text);
  std::int64_t count = -1;
  auto ids = server_tokens(text, &count);
  if (!ids || static_cast<std::int64_t>(ids->size()) != count)
    throw BackendError("model '" + name_ +
                       "': token ids are not available (set `tokenizer`, or serve with a "
                       "server whose /tokenize returns them)");
  return *ids;
}

std::vector<mr::sdk::ScoreResult> OpenAIBackend::score(
    const std::vector<mr::sdk::ScoreRequest>& requests) {
  if (!template_)
    throw BackendError("model '" + name_ +
                       "' cannot score without `tokenizer`: the prompt is rendered with the "
                       "model's chat template locally and scored through /v1/completions "
                       "(echo + logprobs)");
  ensure_ready();
  std::vector<mr::sdk::ScoreResult> results(requests.size());
  std::atomic<std::size_t> next{0};
  std::atomic<bool> abort{false};
  std::exception_ptr failure;
  std::mutex mutex;
  auto worker = [&](ConnectionCache& connections) {
    for (std::size_t i = next++; i < requests.size() && !abort; i = next++) {
      const auto& r = requests[i];
      auto& out = results[i];
      out.request_id = r.id;
      try {
        const auto text = template_->render_for_training(r.messages, r.completion, true);
        const std::string full = text.prompt_text + text.response_text;
        // One generated token (some servers refuse 0); echo returns the prompt's own
        // log-probs, of which the completion's are those at or after its offset.
        const std::string body =
            json{{"model", model_}, {"prompt", full}, {"max_tokens", 1}, {"temperature", 0.0},
                 {"echo", true},    {"logprobs", 0},  {"seed", 0},       {"stream", false}}
                .dump();
        std::string problem;
        const HttpReply reply =
            servers_->call(connections, "/completions", &body, [](const HttpReply& reply) {
              const auto j = json::parse(reply.body, nullptr, false);
              return j.is_object() && j.contains("choices") ? std::string()
                                                            : std::string("no choices");
            });
        if (!reply.ok()) {
          out.error = describe_failure(reply);
          continue;
        }
        const json j = json::parse(reply.body);
        const json& lp = j["choices"][0].value("logprobs", json());
        if (!lp.is_object() || !lp.contains("token_logprobs") || !lp.contains("text_offset") ||
            !lp["token_logprobs"].is_array() || !lp["text_offset"].is_array() ||
            lp["token_logprobs"].size() != lp["text_offset"].size()) {
          out.error = "the server returned no prompt log-probs (echo with logprobs unsupported)";
          continue;
        }
        const auto start = static_cast<std::int64_t>(text.prompt_text.size());
        const auto end = static_cast<std::int64_t>(full.size());
        for (std::size_t k = 0; k < lp["text_offset"].size(); ++k) {
          const json& offset = lp["text_offset"][k];
          const json& value = lp["token_logprobs"][k];
          if (!offset.is_number_integer()) continue;
          const auto at = offset.get<std::int64_t>();
          if (at < start || at >= end) continue;
          if (!value.is_number()) {
            out.error = "the server gave no log-prob for the completion token at offset " +
                        std::to_string(at);
            break;
          }
          out.token_logprobs.push_back(value.get<double>());
          out.logprob_sum += value.get<double>();
        }
        if (out.error.empty() && out.token_logprobs.empty())
          out.error = "the server's log-probs cover none of the completion";
        if (!out.error.empty()) {
          out.token_logprobs.clear();
          out.logprob_sum = 0;
          continue;
        }
        auto ids = tokenizer_->encode(text.response_text);
        if (ids.size() == out.token_logprobs.size()) out.token_ids = std::move(ids);
      } catch (const ServersUnavailable&) {
        std::lock_guard lock(mutex);
        if (!failure) failure = std::current_exception();
        abort = true;
      } catch (const mr::sdk::Error& e) {
        out.error = e.what();
      }
    }
  };
  run_pool(std::min<std::size_t>(static_cast<std::size_t>(concurrency_), requests.size()), worker,
           failure);
  return results;
}

void OpenAIBackend::reload(const fs::path& checkpoint_dir) {
  if (managed_.empty())
    throw BackendError("model '" + name_ + "' is served by servers metareward does not manage (" +
                       servers_->endpoint(0).base_url + "); it cannot load '" +
                       checkpoint_dir.string() +
                       "'. Use launch = [...] so that metareward restarts the servers on each "
                       "new checkpoint, or give this role a fixed model");
  checkpoint_ = checkpoint_dir.string();
  suspended_ = false;
  start_servers(checkpoint_);
  probed_ = false;
  ensure_ready();
}

void OpenAIBackend::suspend() {
  if (!stop_during_training_ || managed_.empty() || suspended_) return;
  logger_.info("model '" + name_ +
               "': stopping its managed server(s) while training runs "
               "(stop_during_training)");
  stop_servers();
  suspended_ = true;
}

}  // namespace

std::unique_ptr<mr::sdk::ModelBackend> make_openai_backend(mr::sdk::HostContext& ctx) {
  return std::make_unique<OpenAIBackend>(ctx);
}

}  // namespace mr::plugins::openai_backend
