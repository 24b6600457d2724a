// End-to-end: `metareward run` with roles generating over HTTP. Every role through an `openai`
// model whose managed `metareward serve` metareward starts itself (killed once mid-run, so the
// backend has to restart it), with a local torch model training ([roles] train): the artifacts
// equal those of the in-process run byte for byte, across the reload after training. And a
// fixed judge behind a fault-injecting proxy (500s, garbage bodies, hangs) with an API key:
// the same artifacts as the in-process fixed judge, and the key written nowhere.
#include <signal.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <map>
#include <regex>
#include <string>
#include <thread>

#include <httplib.h>

#include "cli_runner.hpp"
#include "run_files.hpp"
#include "run_setup.hpp"
#include "serve_process.hpp"

namespace fs = std::filesystem;
using mr::tests::check_same_files;
using mr::tests::CliResult;
using mr::tests::iteration_files;
using mr::tests::read_text;
using mr::tests::RunSetup;

namespace {

/// The last "==== metareward: pid N" line of a managed server's log, or -1.
int last_server_pid(const fs::path& log) {
  const std::string text = read_text(log);
  static const std::regex line("==== metareward: pid ([0-9]+)");
  int pid = -1;
  for (std::sregex_iterator it(text.begin(), text.end(), line), end; it != end; ++it)
    pid = std::stoi((*it)[1]);
  return pid;
}

/// Forwards to `target` and breaks every few chat requests: a 500, a 200 with an HTML body, and
/// an answer that comes after the client's timeout.
class FaultyProxy {
 public:
  explicit FaultyProxy(int target_port) : target_port_(target_port) {
    auto forward = [this](const httplib::Request& req, httplib::Response& res) {
      const bool chat = req.path.find("completions") != std::string::npos;
      const int call = chat ? chat_calls_++ : -1;
      if (call % 9 == 1) {
        ++faults_;
        res.status = 500;
        res.set_content(R"({"error":{"message":"injected"}})", "application/json");
        return;
      }
      if (call % 9 == 4) {
        ++faults_;
        res.set_content("<html>bad gateway</html>", "text/html");
        return;
      }
      if (call % 18 == 7) {
        ++faults_;
        std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // > timeout_s
      }
      httplib::Client upstream("127.0.0.1", target_port_);
      upstream.set_read_timeout(60, 0);
      httplib::Headers headers;
      if (req.has_header("Authorization"))
        headers.emplace("Authorization", req.get_header_value("Authorization"));
      auto r = req.method == "GET"
                   ? upstream.Get(req.path.c_str(), headers)
                   : upstream.Post(req.path.c_str(), headers, req.body, "application/json");
      if (!r) {
        res.status = 502;
        return;
      }
      res.status = r->status;
      res.set_content(r->body, r->get_header_value("Content-Type").c_str());
    };
    server_.Get(".*", forward);
    server_.Post(".*", forward);
    server_.new_task_queue = [] { return new httplib::ThreadPool(16); };
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FaultyProxy() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }
  int faults() const { return faults_; }

 private:
  int target_port_;
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::atomic<int> chat_calls_{0}, faults_{0};
};

}  // namespace

TEST_CASE("http run: every role over a managed metareward serve gives the in-process artifacts",
          "[e2e][run][http]") {
  RunSetup in_process("http_reference");
  const CliResult reference = in_process.run();
  INFO(reference.err);
  REQUIRE(reference.exit_code == 0);

  RunSetup http("http_managed");
  std::string config = read_text(http.config);
  config += "\n[models.served]\ntype = \"openai\"\nlaunch = [\"" + std::string(MR_CLI_PATH) +
            "\", \"serve\", \"--model\", \"{model}\", \"--port\", \"{port}\", \"--threads\", "
            "\"{threads}\"]\npath = \"" +
            http.model.string() +
            "\"\nconcurrency = 4\n\n[roles]\nactor = \"served\"\njudge = \"served\"\n"
            "meta_judge = \"served\"\ntrain = \"policy\"\n";
  mr::tests::write_text(http.config, config);
  // Kill -9 the server while the judge of iteration 1 runs: the backend restarts it.
  CliResult r;
  std::atomic<bool> done{false};
  std::thread run([&] {
    r = http.run();
    done = true;
  });
  const fs::path server_log = http.out / "servers" / "served-0.log";
  bool killed = false;
  while (!killed && !done) {
    if (fs::exists(http.out / "iter_1" / "judgments.jsonl.partial")) {
      const int pid = last_server_pid(server_log);
      if (pid > 0) killed = ::kill(pid, SIGKILL) == 0;
    }
    if (fs::exists(http.out / "iter_2")) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  run.join();
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(killed);
  CHECK_THAT(r.err, Catch::Contains("is gone; restarting it"));
  // Loaded to train only; the servers follow each new checkpoint.
  CHECK_THAT(r.err, Catch::Contains("loading model 'policy' to train"));
  CHECK_THAT(r.err,
             Catch::Contains("model 'served' <- " + (http.out / "iter_1" / "model").string()));
  check_same_files(iteration_files(in_process.out), iteration_files(http.out));
  // The servers are gone once the run is: nothing answers on their port any more.
  CHECK(last_server_pid(server_log) > 0);
  CHECK(::kill(last_server_pid(server_log), 0) != 0);
}

TEST_CASE("http run: a fixed judge behind a faulty proxy, with an API key, changes nothing",
          "[e2e][run][http]") {
  const std::string key = "sk-e2e-NEVER-WRITTEN-4711";
  const std::vector<std::string> env = {"MR_E2E_API_KEY=" + key};
  auto fixed_judge = [](RunSetup& s, const std::string& table) {
    const fs::path judge = s.dir.path() / "judge_model";
    fs::copy(s.model, judge, fs::copy_options::recursive);
    mr::tests::write_text(s.config, read_text(s.config) + table +
                                        "\n[roles]\njudge = \"fixed\"\nmeta_judge = \"fixed\"\n");
    return judge;
  };
  RunSetup in_process("http_fixed_reference");
  fixed_judge(in_process, "\n[models.fixed]\ntype = \"torch\"\npath = \"" +
                              (in_process.dir.path() / "judge_model").string() + "\"\n");
  const CliResult reference = in_process.run();
  INFO(reference.err);
  REQUIRE(reference.exit_code == 0);

  RunSetup http("http_fixed_proxy");
  const fs::path judge = http.dir.path() / "judge_model";
  fs::copy(http.model, judge, fs::copy_options::recursive);
  mr::tests::ServeProcess server(
      http.dir.path() / "serve.log",
      {"--model", judge.string(), "--threads", "1", "--api-key-env", "MR_E2E_API_KEY"}, env);
  FaultyProxy proxy(server.port());
  mr::tests::write_text(
      http.config, read_text(http.config) + "\n[models.fixed]\ntype = \"openai\"\nbase_url = \"" +
                       proxy.url() +
                       "\"\napi_key_env = \"MR_E2E_API_KEY\"\ntimeout_s = 1.0\n"
                       "retry_base_delay_s = 0.01\nmax_retries = 8\nconcurrency = 4\n"
                       "\n[roles]\njudge = \"fixed\"\nmeta_judge = \"fixed\"\n");
  const CliResult r = mr::tests::run_cli({"run", http.config.string()}, http.dir.path(), env);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(proxy.faults() >= 3);
  check_same_files(iteration_files(in_process.out), iteration_files(http.out));
  // The key is nowhere in the run directory (config, manifest, logs, rows) nor in the output.
  for (const auto& e : fs::recursive_directory_iterator(http.out)) {
    if (!e.is_regular_file()) continue;
    INFO(e.path());
    CHECK(read_text(e.path()).find(key) == std::string::npos);
  }
  CHECK(r.err.find(key) == std::string::npos);
  CHECK(r.out.find(key) == std::string::npos);
  CHECK(server.log().find(key) == std::string::npos);
}

TEST_CASE("http run: the shipped testbed config over HTTP equals the in-process testbed config",
          "[e2e][run][http][testbed]") {
  // The demo's layout: runs/testbed/seed is the committed seed (the configs' relative paths).
  mr::tests::ScratchDir work("http_testbed");
  // Configs copied, as [prompts] files are relative to the config file.
  const fs::path source = fs::path(MR_SOURCE_DIR) / "configs" / "testbed";
  fs::create_directories(work.path() / "runs" / "testbed");
  fs::create_directories(work.path() / "configs" / "testbed");
  fs::create_directory_symlink(source / "seed", work.path() / "runs" / "testbed" / "seed");
  for (const char* config : {"meta_rewarding.toml", "meta_rewarding_http.toml"})
    fs::copy_file(source / config, work.path() / "configs" / "testbed" / config);
  // CI-sized: 2 iterations (the judge trained in the first, so every stage and a reload after
  // training run), 6 prompts, a 6-prompt evaluation.
  const std::vector<std::string> sizes = {
      "--set", "run.iterations=2",         "--set", "run.train_judge=[true, false]",
      "--set", "prompts.per_iteration=6",  "--set", "evaluation.max_prompts=6",
      "--set", "evaluation.judge_pairs=6", "--set", "run.threads=1"};
  auto run = [&](const std::string& config) {
    std::vector<std::string> args = {"run",
                                     (work.path() / "configs" / "testbed" / config).string()};
    args.insert(args.end(), sizes.begin(), sizes.end());
    return mr::tests::run_cli(args, work.path());
  };
  const CliResult in_process = run("meta_rewarding.toml");
  INFO(in_process.err);
  REQUIRE(in_process.exit_code == 0);
  const CliResult http = run("meta_rewarding_http.toml");
  INFO(http.err);
  REQUIRE(http.exit_code == 0);
  CHECK_THAT(http.err, Catch::Contains("stopping its managed server(s) while training runs"));
  const fs::path runs = work.path() / "runs" / "testbed";
  check_same_files(iteration_files(runs / "meta_rewarding"),
                   iteration_files(runs / "meta_rewarding_http"));
  CHECK(fs::exists(runs / "meta_rewarding_http" / "servers" / "served-0.log"));
}
