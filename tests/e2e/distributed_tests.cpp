// End-to-end tests of distributed runs (2 ranks on loopback, Gloo, 1 thread each): through
// `metareward launch`, and started directly with the torchrun environment. Compared with the
// one-process run of the same config; ranks killed, hung, and the launcher killed mid-run.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "run_files.hpp"
#include "run_setup.hpp"

#if defined(MR_E2E_HAVE_TORCH_BACKEND) && defined(MR_E2E_HAVE_RECIPE)

namespace {

namespace fs = std::filesystem;
using Catch::Contains;
using mr::tests::check_same_files;
using mr::tests::CliResult;
using mr::tests::iteration_files;
using mr::tests::read_text;
using mr::tests::RunSetup;
using namespace std::chrono_literals;

/// Every sharding-relevant size of the CI run: 1 thread per rank, 2 micro-batches per step (one
/// per rank), replica checksums after every step.
const std::vector<std::string> kSets = {"--set", "optimizer.micro_batch_size=1",
                                        "--set", "distributed.check_replicas_every_steps=1",
                                        "--set", "distributed.backend=\"gloo\""};

std::vector<std::string> with_sets(std::vector<std::string> args,
                                   const std::vector<std::string>& more = {}) {
  args.insert(args.end(), kSets.begin(), kSets.end());
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

/// `metareward ARGS...` in the background, stdout and stderr into `log`.
class Child {
 public:
  Child(const std::vector<std::string>& args,
        const fs::path& cwd,
        const fs::path& log,
        const std::vector<std::pair<std::string, std::string>>& env = {})
      : log_(log) {
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setpgid(0, 0);
      if (::chdir(cwd.c_str()) != 0) ::_exit(127);
      ::unsetenv("METAREWARD_PLUGIN_PATH");
      for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::vector<char*> argv;
      std::string binary = MR_CLI_PATH;
      argv.push_back(binary.data());
      std::vector<std::string> copy = args;
      for (auto& a : copy) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(binary.c_str(), argv.data());
      ::_exit(127);
    }
  }
  ~Child() {
    if (!status_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  std::string log() const { return read_text(log_); }
  /// The exit status (128 + signal when killed), or nullopt when it runs past `timeout`.
  std::optional<int> wait(std::chrono::seconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!status_ && std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_)
        status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      else
        std::this_thread::sleep_for(50ms);
    }
    return status_;
  }

 private:
  pid_t pid_ = -1;
  fs::path log_;
  std::optional<int> status_;
};

/// Waits until `file` exists (the run got that far); REQUIREs it within `timeout`.
void wait_for(const fs::path& file, std::chrono::seconds timeout = 300s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!fs::exists(file) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  INFO(file);
  REQUIRE(fs::exists(file));
}

/// The processes whose command line mentions `needle` (the ranks of one test's run).
std::vector<pid_t> processes_mentioning(const std::string& needle) {
  std::vector<pid_t> out;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = read_text(e.path() / "cmdline");
    for (char& c : cmdline)
      if (c == '\0') c = ' ';
    if (cmdline.find(needle) != std::string::npos &&
        cmdline.find("metareward") != std::string::npos)
      out.push_back(static_cast<pid_t>(std::stoi(name)));
  }
  return out;
}

/// After the launcher of `s`'s run ended: no rank of it is left, and `launch ... --resume`
/// finishes with the bytes of the uninterrupted run in `expected_out`.
void check_resumed_through_launch(const RunSetup& s, const fs::path& expected_out) {
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!processes_mentioning(s.config.string()).empty() &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(100ms);
  CHECK(processes_mentioning(s.config.string()).empty());
  const CliResult resumed = mr::tests::run_cli(
      with_sets({"launch", "--nproc-per-node", "2", "--", "run", s.config.string(), "--resume"}),
      s.dir.path());
  INFO(resumed.err);
  REQUIRE(resumed.exit_code == 0);
  check_same_files(iteration_files(expected_out), iteration_files(s.out));
}

/// Rank `rank` of 2 started directly, as torchrun would.
std::vector<std::pair<std::string, std::string>> torchrun_env(int rank, int port) {
  return {{"RANK", std::to_string(rank)},       {"WORLD_SIZE", "2"},
          {"LOCAL_RANK", std::to_string(rank)}, {"LOCAL_WORLD_SIZE", "2"},
          {"MASTER_ADDR", "127.0.0.1"},         {"MASTER_PORT", std::to_string(port)}};
}

/// Float tensors (F32, or BF16 widened) of a model.safetensors, by name.
std::map<std::string, std::vector<float>> read_f32_tensors(const fs::path& file) {
  const std::string bytes = read_text(file);
  std::uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  const auto header = nlohmann::json::parse(bytes.substr(8, header_len));
  std::map<std::string, std::vector<float>> out;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") continue;
    const std::string dtype = info.at("dtype");
    if (dtype != "F32" && dtype != "BF16") continue;
    const auto begin = info.at("data_offsets").at(0).get<std::size_t>();
    const auto end = info.at("data_offsets").at(1).get<std::size_t>();
    const char* data = bytes.data() + 8 + header_len + begin;
    std::vector<float> v;
    if (dtype == "F32") {
      v.resize((end - begin) / 4);
      std::memcpy(v.data(), data, end - begin);
    } else {
      for (std::size_t i = 0; i < (end - begin) / 2; ++i) {
        std::uint16_t half = 0;
        std::memcpy(&half, data + 2 * i, 2);
        const std::uint32_t bits = static_cast<std::uint32_t>(half) << 16;
        float f = 0;
        std::memcpy(&f, &bits, 4);
        v.push_back(f);
      }
    }
    out[name] = std::move(v);
  }
  return out;
}

}  // namespace

TEST_CASE(
    "distributed run: 2 ranks through launch equal the 1-rank run: also after kill -9 or "
    "SIGTERM of the launcher and --resume",
    "[e2e][run][distributed]") {
  RunSetup one("dist_one");
  const CliResult r1 = one.run(kSets);
  INFO(r1.err);
  REQUIRE(r1.exit_code == 0);

  RunSetup two("dist_two");
  const CliResult r2 = mr::tests::run_cli(
      with_sets({"launch", "--nproc-per-node", "2", "--", "run", two.config.string()}),
      two.dir.path());
  INFO(r2.err);
  REQUIRE(r2.exit_code == 0);
  CHECK_THAT(r2.err + r2.out, Contains("[rank 1]"));
  CHECK_THAT(r2.err + r2.out, Contains("gloo for training tensors"));
  // Every iteration's artifacts, the trained models included: with one micro-batch per rank the
  // summed gradients are the one-process sums bit for bit.
  check_same_files(iteration_files(one.out), iteration_files(two.out));

  // kill -9 of the launcher in the middle of iteration 1's judging: the ranks die with it
  // (PR_SET_PDEATHSIG), and --resume finishes with the same bytes.
  RunSetup killed("dist_killed");
  {
    Child launcher(
        with_sets({"launch", "--nproc-per-node", "2", "--", "run", killed.config.string()}),
        killed.dir.path(), killed.dir.path() / "launch.log");
    wait_for(killed.out / "iter_1" / "responses.jsonl");
    ::kill(launcher.pid(), SIGKILL);
    REQUIRE(launcher.wait(30s).has_value());
  }
  check_resumed_through_launch(killed, one.out);

  // SIGTERM to the launcher reaches every rank: rank 0 saves and says how to resume, the
  // launcher exits with its 143 (not as a failed rank), and --resume gives the same bytes.
  RunSetup stopped("dist_sigterm");
  {
    Child launcher(
        with_sets({"launch", "--nproc-per-node", "2", "--", "run", stopped.config.string()}),
        stopped.dir.path(), stopped.dir.path() / "launch.log");
    wait_for(stopped.out / "iter_1" / "judgments.jsonl");
    ::kill(launcher.pid(), SIGTERM);
    const auto code = launcher.wait(120s);
    const std::string log = launcher.log();
    INFO(log);
    REQUIRE(code.has_value());
    CHECK(*code == 143);
    CHECK_THAT(log, Contains("[rank 0] "));
    CHECK_THAT(log, Contains("resume with"));
    CHECK_THAT(log, !Contains("stopping the other ranks"));
  }
  check_resumed_through_launch(stopped, one.out);
}

TEST_CASE(
    "distributed run: 4 micro-batches per step on 2 ranks train the 1-rank weights within "
    "1e-5",
    "[e2e][run][distributed]") {
  const std::vector<std::string> sizes = {"--set", "run.iterations=1", "--set",
                                          "optimizer.batch_size=4"};
  RunSetup one("dist_tol_one");
  const CliResult r1 = one.run(with_sets({}, sizes));
  INFO(r1.err);
  REQUIRE(r1.exit_code == 0);
  RunSetup two("dist_tol_two");
  const CliResult r2 = mr::tests::run_cli(
      with_sets({"launch", "--nproc-per-node", "2", "--", "run", two.config.string()}, sizes),
      two.dir.path());
  INFO(r2.err);
  REQUIRE(r2.exit_code == 0);
  // Generation ran on the same model: identical. Training sums (g0+g2)+(g1+g3) instead of
  // ((g0+g1)+g2)+g3, so the weights agree to rounding.
  for (const char* file : {"responses.jsonl", "judgments.jsonl", "actor_pairs.jsonl",
                           "meta_judgments.jsonl", "judge_pairs.jsonl"}) {
    INFO(file);
    CHECK(read_text(one.out / "iter_1" / file) == read_text(two.out / "iter_1" / file));
  }
  const auto a = read_f32_tensors(one.out / "iter_1" / "model" / "model.safetensors");
  const auto b = read_f32_tensors(two.out / "iter_1" / "model" / "model.safetensors");
  REQUIRE(a.size() == b.size());
  REQUIRE(!a.empty());
  double worst = 0;
  for (const auto& [name, va] : a) {
    const auto& vb = b.at(name);
    REQUIRE(va.size() == vb.size());
    for (std::size_t i = 0; i < va.size(); ++i)
      worst = std::max(worst, std::abs(static_cast<double>(va[i]) - vb[i]) /
                                  std::max(1.0, std::abs(static_cast<double>(va[i]))));
  }
  INFO("largest relative difference " << worst);
  CHECK(worst <= 1e-5);
}

TEST_CASE(
    "distributed run: a rank killed or hung stops the other with an error naming it and "
    "--resume completes",
    "[e2e][run][distributed]") {
  RunSetup s("dist_fault");
  const int port = free_port();
  // Six iterations over the same prompts, so that the fault lands mid-run.
  const std::vector<std::string> longer = {
      "--set", "run.iterations=6",       "--set", "run.train_judge=true",
      "--set", "pair_selection.rho=0.1", "--set", "prompts.disjoint=false",
      "--set", "distributed.timeout_s=8"};
  const std::vector<std::string> args = with_sets({"run", s.config.string()}, longer);
  SECTION("killed") {
    Child rank0(args, s.dir.path(), s.dir.path() / "rank0.log", torchrun_env(0, port));
    Child rank1(args, s.dir.path(), s.dir.path() / "rank1.log", torchrun_env(1, port));
    wait_for(s.out / "iter_1" / "responses.jsonl");
    ::kill(rank1.pid(), SIGKILL);
    const auto code = rank0.wait(60s);
    INFO(rank0.log());
    REQUIRE(code.has_value());
    CHECK(*code == 1);
    CHECK_THAT(rank0.log(), Contains("rank 1"));
  }
  SECTION("hung") {
    Child rank0(args, s.dir.path(), s.dir.path() / "rank0.log", torchrun_env(0, port));
    Child rank1(args, s.dir.path(), s.dir.path() / "rank1.log", torchrun_env(1, port));
    wait_for(s.out / "iter_1" / "responses.jsonl");
    ::kill(rank1.pid(), SIGSTOP);
    const auto code = rank0.wait(60s);
    ::kill(rank1.pid(), SIGKILL);
    INFO(rank0.log());
    REQUIRE(code.has_value());
    CHECK(*code == 1);
    CHECK_THAT(rank0.log(), Contains("rank 1 stopped responding"));
  }
  // Resumed with another world size: generation stages and training are world-size free.
  const CliResult resumed =
      mr::tests::run_cli(with_sets({"run", s.config.string(), "--resume"}, longer), s.dir.path());
  INFO(resumed.err);
  CHECK(resumed.exit_code == 0);
  CHECK(fs::exists(s.out / "iter_6" / "metrics.json"));
}

TEST_CASE(
    "distributed train-dpo and sft: 2 ranks write the 1-process model byte for byte from rank 0 "
    "only (full fine-tuning and LoRA and bf16) and generate refuses to run on ranks",
    "[e2e][distributed]") {
  RunSetup s("dist_train");
  std::string pairs, chats;
  for (int i = 0; i < 8; ++i) {
    const std::string n = std::to_string(i);
    pairs += "{\"prompt\": \"Question " + n + "\", \"chosen\": \"yes " + n +
             " and more\", \"rejected\": \"no\"}\n";
    chats += "{\"messages\": [{\"role\": \"user\", \"content\": \"Say " + n +
             "\"}, {\"role\": \"assistant\", \"content\": \"" + n + " " + n + "\"}]}\n";
  }
  s.dir.write("pairs.jsonl", pairs);
  s.dir.write("chats.jsonl", chats);
  // One micro-batch per rank and per step; one thread per process on both sides.
  const std::vector<std::string> sizes = {"--set", "optimizer.batch_size=2", "--set",
                                          "optimizer.micro_batch_size=1"};
  struct Variant {
    std::string name, command;
    std::vector<std::string> sets;
  };
  // Full fine-tuning, SFT, LoRA (only the adapter is reduced; lora_dropout masks per
  // micro-batch) and bf16 weights with fp32 master weights.
  const std::vector<Variant> variants = {
      {"dpo", "train-dpo", {}},
      {"sft", "sft", {}},
      {"lora", "train-dpo", {"--set", "optimizer.lora=true", "--set", "optimizer.lora_r=4"}},
      {"bf16", "train-dpo", {"--set", "models.policy.dtype=\"bfloat16\""}}};
  for (const Variant& v : variants) {
    INFO(v.name);
    const std::string data = v.command == "sft" ? "chats.jsonl" : "pairs.jsonl";
    std::vector<std::string> args = {v.command, "--model", s.model.string(),
                                     v.command == "sft" ? "--data" : "--pairs", data};
    args.insert(args.end(), sizes.begin(), sizes.end());
    args.insert(args.end(), v.sets.begin(), v.sets.end());
    auto with_out = [&](const std::string& out, const std::string& threads) {
      std::vector<std::string> a = args;
      for (const std::string& w : {std::string("--out"), out, std::string("--metrics"),
                                   out + ".metrics.jsonl", std::string("--threads"), threads})
        a.push_back(w);
      return a;
    };
    const std::string one_dir = v.name + "_one", two_dir = v.name + "_two";
    const CliResult one = mr::tests::run_cli(with_out(one_dir, "1"), s.dir.path());
    INFO(one.err);
    REQUIRE(one.exit_code == 0);
    std::vector<std::string> launched = {"launch", "--nproc-per-node", "2", "--"};
    for (const auto& a : with_out(two_dir, "2")) launched.push_back(a);
    const CliResult two = mr::tests::run_cli(launched, s.dir.path());
    INFO(two.err);
    REQUIRE(two.exit_code == 0);
    // Per-step metrics equal too, but for the throughput (a timing).
    auto metrics = [&](const std::string& dir) {
      std::vector<nlohmann::json> rows;
      std::istringstream lines(read_text(s.dir.path() / (dir + ".metrics.jsonl")));
      for (std::string l; std::getline(lines, l);) {
        rows.push_back(nlohmann::json::parse(l));
        rows.back().erase("tokens_per_s");
      }
      return rows;
    };
    // The summary line comes from rank 0 alone.
    CHECK_THAT(two.out, Contains("[rank 0] {"));
    CHECK_THAT(two.out, !Contains("[rank 1] {"));
    const auto m1 = metrics(one_dir), m2 = metrics(two_dir);
    CHECK(m1.size() >= 4);
    REQUIRE(m1.size() == m2.size());
    if (v.name == "bf16") {
      // One process accumulates its two micro-batches' bf16 gradients in bf16; two ranks sum
      // them in the fp32 buckets: the same step to bf16 rounding.
      const auto a = read_f32_tensors(s.dir.path() / one_dir / "model.safetensors");
      const auto b = read_f32_tensors(s.dir.path() / two_dir / "model.safetensors");
      REQUIRE(!a.empty());
      REQUIRE(a.size() == b.size());
      double worst = 0;
      for (const auto& [name, va] : a)
        for (std::size_t i = 0; i < va.size(); ++i)
          worst = std::max(worst, std::abs(static_cast<double>(va[i]) - b.at(name).at(i)) /
                                      std::max(1e-2, std::abs(static_cast<double>(va[i]))));
      INFO("largest relative weight difference " << worst);
      CHECK(worst <= 1.0 / 64);  // two bf16 ulps
      for (std::size_t i = 0; i < m1.size(); ++i)
        CHECK(std::abs(m1[i]["loss"].get<double>() - m2[i]["loss"].get<double>()) < 1e-4);
      continue;
    }
    CHECK(read_text(s.dir.path() / one_dir / "model.safetensors") ==
          read_text(s.dir.path() / two_dir / "model.safetensors"));
    CHECK(m1 == m2);
    if (v.name == "lora") {
      const fs::path adapter = "adapter_model.safetensors";
      REQUIRE(fs::exists(s.dir.path() / (two_dir + ".adapter") / adapter));
      CHECK(read_text(s.dir.path() / (one_dir + ".adapter") / adapter) ==
            read_text(s.dir.path() / (two_dir + ".adapter") / adapter));
    }
  }
  const CliResult gen = mr::tests::run_cli({"launch", "--nproc-per-node", "2", "--", "generate",
                                            "--model", s.model.string(), "--input", "pairs.jsonl"},
                                           s.dir.path());
  CHECK(gen.exit_code == 2);
  CHECK_THAT(gen.err, Contains("generate runs in one process, but this is rank"));
}

TEST_CASE("distributed run: bad torchrun variables and an unavailable backend are clear errors",
          "[e2e][run][distributed]") {
  RunSetup s("dist_env");
  const std::vector<std::string> args = {"run", s.config.string()};
  CliResult r =
      mr::tests::run_cli(args, s.dir.path(), {"RANK=2", "WORLD_SIZE=2", "MASTER_ADDR=127.0.0.1"});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Contains("RANK=2 is not below WORLD_SIZE=2"));
  r = mr::tests::run_cli(args, s.dir.path(), {"RANK=0", "WORLD_SIZE=two"});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Contains("WORLD_SIZE='two'"));
  // This build's libtorch has no CUDA: nccl is refused on every rank, before any work.
  r = mr::tests::run_cli({"launch", "--nproc-per-node", "2", "--", "run", s.config.string(),
                          "--set", "distributed.backend=\"nccl\""},
                         s.dir.path());
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Contains("backend = \"nccl\""));
  CHECK_FALSE(fs::exists(s.out / "iter_1"));
}

#endif
