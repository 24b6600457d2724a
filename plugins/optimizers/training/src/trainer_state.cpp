// The resumable trainer state (kTrainerStateFile): a libtorch archive with a header (format,
// run id, fingerprint, steps), the trained parameters (or their fp32 masters), the AdamW state,
// the epoch's metric sums, the loss scale and the task's extra tensors. Written atomically;
// validated completely before anything is copied into the model.
#include "training_internal.hpp"

#include <system_error>

#include "metareward/sdk/error.hpp"
#include "metareward/sdk/file_io.hpp"

namespace mr::training {

using namespace detail;

namespace detail {

std::string read_string(torch::serialize::InputArchive& ar,
                        const std::string& key,
                        const fs::path& path) {
  c10::IValue v;
  if (!ar.try_read(key, v) || !v.isString())
    throw DataError("'" + path.string() + "' is not a metareward trainer state (no '" + key +
                    "' entry)");
  return v.toStringRef();
}

std::int64_t read_int(torch::serialize::InputArchive& ar,
                      const std::string& key,
                      const fs::path& path) {
  c10::IValue v;
  if (!ar.try_read(key, v) || !v.isInt())
    throw DataError("'" + path.string() + "' is not a metareward trainer state (no '" + key +
                    "' entry)");
  return v.toInt();
}

void load_archive(torch::serialize::InputArchive& ar,
                  const fs::path& path,
                  c10::optional<torch::Device> device) {
  try {
    ar.load_from(path.string(), device);
  } catch (const std::exception& e) {
    throw DataError("cannot read trainer state '" + path.string() + "': " + first_line(e));
  }
}

TrainerStateInfo read_header(torch::serialize::InputArchive& ar, const fs::path& path) {
  if (read_string(ar, "format", path) != kStateFormat)
    throw DataError("'" + path.string() + "' is not a metareward trainer state");
  TrainerStateInfo info;
  info.format_version = read_int(ar, "format_version", path);
  if (info.format_version != kTrainerStateVersion)
    throw DataError("trainer state '" + path.string() + "' has format version " +
                    std::to_string(info.format_version) + ", this build reads version " +
                    std::to_string(kTrainerStateVersion) + "; delete '" +
                    path.parent_path().string() + "' to start the training over");
  info.run = read_string(ar, "run", path);
  info.fingerprint = read_string(ar, "fingerprint", path);
  info.step = read_int(ar, "step", path);
  info.total_steps = read_int(ar, "total_steps", path);
  return info;
}

void save_state(const fs::path& state_dir,
                const Task& task,
                const std::string& fingerprint,
                std::int64_t step,
                std::int64_t total_steps,
                const std::vector<torch::Tensor>& params,
                torch::optim::Optimizer& optimizer,
                const EpochSums& epoch,
                const LossScale& loss_scale) {
  std::error_code ec;
  fs::create_directories(state_dir, ec);
  if (ec)
    throw DataError("cannot create trainer state directory '" + state_dir.string() +
                    "': " + ec.message());
  torch::serialize::OutputArchive ar;
  ar.write("format", c10::IValue(std::string(kStateFormat)));
  ar.write("format_version", c10::IValue(kTrainerStateVersion));
  ar.write("run", c10::IValue(task.run));
  ar.write("fingerprint", c10::IValue(fingerprint));
  ar.write("step", c10::IValue(step));
  ar.write("total_steps", c10::IValue(total_steps));

  torch::serialize::OutputArchive param_ar(ar.compilation_unit());
  param_ar.write("count", c10::IValue(static_cast<std::int64_t>(params.size())));
  for (std::size_t i = 0; i < params.size(); ++i)
    param_ar.write(std::to_string(i), params[i].detach(), /*is_buffer=*/true);
  ar.write("parameters", param_ar);

  torch::serialize::OutputArchive opt_ar(ar.compilation_unit());
  optimizer.save(opt_ar);
  ar.write("optimizer", opt_ar);

  c10::List<std::string> names;
  std::vector<double> sums;
  for (const auto& [name, sum] : epoch.sums) {
    names.push_back(name);
    sums.push_back(sum);
  }
  ar.write("epoch_steps", c10::IValue(epoch.steps));
  ar.write("loss_scale", c10::IValue(loss_scale.scale));
  ar.write("loss_scale_good_steps", c10::IValue(loss_scale.good_steps));
  ar.write("epoch_metric_names", c10::IValue(names));
  ar.write("epoch_metric_sums", torch::tensor(sums, torch::kFloat64), /*is_buffer=*/true);

  if (task.save_extra) {
    torch::serialize::OutputArchive extra_ar(ar.compilation_unit());
    for (const auto& [key, t] : task.save_extra()) extra_ar.write(key, t, /*is_buffer=*/true);
    ar.write("data", extra_ar);
  }

  // Temp file + rename: a crash mid-write leaves the previous state intact. libtorch's own
  // file writer throws from its destructor when a write fails (std::terminate on a full disk),
  // so the archive streams into the SDK's checked writer instead: the first failure is kept
  // and reported after save_to() returns, naming the file and the system's reason.
  const fs::path path = state_dir / kTrainerStateFile;
  sdk::AtomicFileWriter out(path);
  std::string write_error;
  ar.save_to([&](const void* data, std::size_t size) -> std::size_t {
    if (write_error.empty()) {
      try {
        out.write(data, size);
      } catch (const std::exception& e) {
        write_error = e.what();
      }
    }
    return size;  // never short: a short count makes libtorch throw mid-archive
  });
  if (!write_error.empty())
    throw DataError("cannot write trainer state '" + path.string() + "': " + write_error);
  try {
    out.commit();
  } catch (const std::exception& e) {
    throw DataError("cannot write trainer state '" + path.string() + "': " + e.what());
  }
}

/// Restores a state written by save_state() for this same run; returns the completed steps.
/// Validates everything before touching the model so a refused state leaves it unchanged.
std::int64_t load_state(const fs::path& state_dir,
                        Task& task,
                        const std::string& fingerprint,
                        std::int64_t total_steps,
                        const std::vector<torch::Tensor>& params,
                        torch::optim::Optimizer& optimizer,
                        EpochSums& epoch,
                        LossScale& loss_scale) {
  const fs::path path = state_dir / kTrainerStateFile;
  torch::serialize::InputArchive ar;
  load_archive(ar, path, params.front().device());
  const TrainerStateInfo info = read_header(ar, path);
  const std::string start_over = "; delete '" + state_dir.string() + "' to start it over";
  if (info.run != task.run || info.fingerprint != fingerprint)
    throw DataError("trainer state '" + path.string() + "' belongs to another training run (" +
                    info.run + ", fingerprint " + info.fingerprint + "; this run: " + task.run +
                    ", fingerprint " + fingerprint + ": the data or options differ)" + start_over);
  if (info.total_steps != total_steps || info.step < 0 || info.step > total_steps)
    throw DataError("trainer state '" + path.string() + "' is at step " +
                    std::to_string(info.step) + " of " + std::to_string(info.total_steps) +
                    ", this run has " + std::to_string(total_steps) + " steps" + start_over);

  torch::serialize::InputArchive param_ar;
  if (!ar.try_read("parameters", param_ar))
    throw DataError("trainer state '" + path.string() + "' has no parameters" + start_over);
  const std::int64_t count = read_int(param_ar, "count", path);
  if (count != static_cast<std::int64_t>(params.size()))
    throw DataError("trainer state '" + path.string() + "' holds " + std::to_string(count) +
                    " parameter tensors, the model has " + std::to_string(params.size()) +
                    start_over);
  std::vector<torch::Tensor> saved(params.size());
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (!param_ar.try_read(std::to_string(i), saved[i], /*is_buffer=*/true))
      throw DataError("trainer state '" + path.string() + "' lacks parameter " + std::to_string(i) +
                      start_over);
    if (saved[i].sizes() != params[i].sizes())
      throw DataError("trainer state '" + path.string() + "': parameter " + std::to_string(i) +
                      " has shape " + shape_text(saved[i].sizes()) + ", the model's has shape " +
                      shape_text(params[i].sizes()) + start_over);
  }
  std::map<std::string, torch::Tensor> extra;
  if (!task.extra_keys.empty()) {
    torch::serialize::InputArchive extra_ar;
    if (!ar.try_read("data", extra_ar))
      throw DataError("trainer state '" + path.string() + "' lacks its data entry" + start_over);
    for (const auto& key : task.extra_keys) {
      torch::Tensor t;
      if (!extra_ar.try_read(key, t, /*is_buffer=*/true) ||
          t.numel() != static_cast<std::int64_t>(task.items.size()))
        throw DataError("trainer state '" + path.string() + "' lacks or has a malformed '" + key +
                        "'" + start_over);
      extra[key] = t.cpu();
    }
  }
  c10::IValue names;
  torch::Tensor sums;
  if (!ar.try_read("epoch_metric_names", names) || !names.isList() ||
      !ar.try_read("epoch_metric_sums", sums, /*is_buffer=*/true) ||
      sums.numel() != static_cast<std::int64_t>(names.toListRef().size()))
    throw DataError("trainer state '" + path.string() + "' lacks its epoch metrics" + start_over);

  torch::serialize::InputArchive opt_ar;
  if (!ar.try_read("optimizer", opt_ar))
    throw DataError("trainer state '" + path.string() + "' lacks the optimizer state" + start_over);
  try {
    optimizer.load(opt_ar);
  } catch (const std::exception& e) {
    throw DataError("trainer state '" + path.string() + "': bad optimizer state: " + first_line(e) +
                    start_over);
  }
  {
    torch::NoGradGuard no_grad;
    for (std::size_t i = 0; i < params.size(); ++i) params[i].copy_(saved[i]);
  }
  epoch.steps = read_int(ar, "epoch_steps", path);
  c10::IValue scale;
  if (ar.try_read("loss_scale", scale) && scale.isDouble()) loss_scale.scale = scale.toDouble();
  c10::IValue good;
  if (ar.try_read("loss_scale_good_steps", good) && good.isInt())
    loss_scale.good_steps = good.toInt();
  epoch.sums.clear();
  const auto sums_cpu = sums.to(torch::kCPU, torch::kFloat64).contiguous();
  const auto& list = names.toListRef();
  for (std::size_t i = 0; i < list.size(); ++i)
    epoch.sums[list[i].toStringRef()] = sums_cpu.data_ptr<double>()[i];
  if (task.load_extra) task.load_extra(extra);
  return info.step;
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// State

TrainerStateInfo read_trainer_state_info(const fs::path& state_dir) {
  const fs::path path = state_dir / kTrainerStateFile;
  if (!fs::exists(path)) throw DataError("no trainer state at '" + path.string() + "'");
  torch::serialize::InputArchive ar;
  load_archive(ar, path, torch::Device(torch::kCPU));
  return read_header(ar, path);
}

}  // namespace mr::training
