// The `torch` model backend: configuration, loading, scoring, reload and the training view.
// Generation lives in generation.cpp.
#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdlib>
#include <numeric>

#include "backend_impl.hpp"
#include "metareward/sdk/error.hpp"
#include "metareward/torch_backend_plugin/torch_backend.hpp"
#include "metareward/torch_model/checkpoint_files.hpp"
#include "metareward/torch_model/small_batch_linear.hpp"

namespace mr::plugins::torch_backend {

namespace sdk = mr::sdk;
namespace tb = ::mr::torch_backend;
using sdk::BackendError;
using sdk::ConfigError;
using sdk::ParamSpec;
using sdk::ParamType;

const char* const kPlainChatTemplateJinja =
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ 'System: ' + message['content'] + '\\n' }}"
    "{% elif message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\\n' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ 'Assistant: ' + message['content'] + eos_token + '\\n' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}";

sdk::Schema torch_backend_schema() {
  return {
      ParamSpec::required_("path", ParamType::String,
                           "Hugging Face checkpoint directory (config.json, *.safetensors, "
                           "tokenizer.json)."),
      ParamSpec::string_("dtype", "float32", "Parameter and compute dtype.")
          .one_of({"float32", "bfloat16", "float16"}),
      ParamSpec::string_("device", "cpu",
                         "libtorch device: \"cpu\", \"cuda:N\", or \"cuda\" = this rank's GPU "
                         "(cuda:LOCAL_RANK in a distributed run, else cuda:0)."),
      ParamSpec::string_("chat_template", "auto",
                         "Chat template; auto picks it from the tokenizer config (plain when "
                         "the tokenizer has none); custom builds it from chat_format.")
          .one_of({"auto", "llama3", "chatml", "plain", "custom"}),
      ParamSpec::string_list(
          "chat_format", {},
          "Chat format overrides as \"key=value\" entries (bos, system_prefix, system_suffix, "
          "user_prefix, user_suffix, assistant_prefix, assistant_suffix, generation_prompt, "
          "end_of_turn, default_system, trim_content), applied on top of chat_template."),
      ParamSpec::int_("max_batch_size", 32, "Most sequences decoded together in one batch.")
          .range(1, std::nullopt),
      ParamSpec::int_("prefix_cache_mib", 1024,
                      "Memory budget of the cross-request prefix cache in MiB: keys/values of "
                      "prompt prefixes, reused by every later prompt of any request that starts "
                      "with the same tokens (least recently used blocks evicted first); 0 = off.")
          .range(0, std::nullopt),
      ParamSpec::int_("prefix_block_tokens", 16,
                      "Tokens per prefix-cache block: prompts share cached prefixes in whole "
                      "blocks.")
          .range(1, 4096),
      ParamSpec::bool_("continuous_batching", true,
                       "Start a waiting sequence as soon as a running one finishes (its prefill "
                       "joins the running batch); false = each batch of max_batch_size sequences "
                       "runs to its end before the next starts."),
      ParamSpec::int_("max_context", 0,
                      "Longest sequence (prompt + generation) in tokens; 0 = the model's "
                      "max_position_embeddings from config.json.")
          .range(0, std::nullopt),
      ParamSpec::string_("adapter", "",
                         "PEFT LoRA adapter directory (adapter_config.json + "
                         "adapter_model.safetensors) folded into the weights of `path` at load; "
                         "\"\" = none. Checkpoints loaded later (the next iteration's) are used "
                         "as they are."),
  };
}

namespace {

torch::Dtype parse_dtype(const std::string& name, const std::string& where) {
  if (name == "float32") return torch::kFloat32;
  if (name == "bfloat16") return torch::kBFloat16;
  if (name == "float16") return torch::kFloat16;
  throw ConfigError("[" + where + "] dtype '" + name +
                    "' is not one of: float32, bfloat16, float16");
}

torch::Device parse_device(const std::string& name, const std::string& where) {
  std::optional<torch::Device> device;
  try {
    device.emplace(name);
  } catch (const std::exception&) {
    throw ConfigError("[" + where + "] device '" + name +
                      "' is not a libtorch device; expected \"cpu\" or \"cuda:N\"");
  }
  if (device->is_cpu()) return *device;
  if (!device->is_cuda()) {
    throw ConfigError("[" + where + "] device '" + name +
                      "' is not supported; expected \"cpu\" or \"cuda:N\"");
  }
  if (!torch::cuda::is_available()) {
    throw ConfigError("[" + where + "] device '" + name +
                      "': CUDA is not available in this libtorch build or machine; use "
                      "device = \"cpu\"");
  }
  const auto count = static_cast<std::int64_t>(torch::cuda::device_count());
  if (!device->has_index()) {
    // torchrun's convention: one process per GPU, the GPU named by LOCAL_RANK.
    const char* local_rank = std::getenv("LOCAL_RANK");
    int index = 0;
    if (local_rank != nullptr && *local_rank != '\0') {
      try {
        index = std::stoi(local_rank);
      } catch (const std::exception&) {
        throw ConfigError("[" + where + "] device 'cuda': LOCAL_RANK='" + std::string(local_rank) +
                          "' is not a number");
      }
    }
    if (index < 0 || index >= count)
      throw ConfigError(
          "[" + where + "] device 'cuda' is this rank's GPU cuda:" + std::to_string(index) +
          " (LOCAL_RANK), but only " + std::to_string(count) + " CUDA device(s) are present");
    device.emplace(torch::kCUDA, static_cast<torch::DeviceIndex>(index));
  }
  if (device->index() && device->index() >= count) {
    throw ConfigError("[" + where + "] device '" + name + "': only " + std::to_string(count) +
                      " CUDA device(s) present");
  }
  return *device;
}

mr::chat::FormatOptions parse_format_options(const std::vector<std::string>& entries,
                                             const std::string& where) {
  mr::chat::FormatOptions options;
  for (const auto& entry : entries) {
    const auto eq = entry.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw ConfigError("[" + where + "] chat_format entry '" + entry +
                        "' is not of the form key=value");
    }
    // Config strings cannot easily hold control characters; accept \n and \t escapes.
    std::string value;
    const std::string raw = entry.substr(eq + 1);
    for (std::size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '\\' && i + 1 < raw.size() && (raw[i + 1] == 'n' || raw[i + 1] == 't')) {
        value += raw[i + 1] == 'n' ? '\n' : '\t';
        ++i;
      } else {
        value += raw[i];
      }
    }
    options[entry.substr(0, eq)] = value;
  }
  return options;
}

safetensors::DType disk_dtype(torch::Dtype dtype) {
  if (dtype == torch::kBFloat16) return safetensors::DType::kBF16;
  if (dtype == torch::kFloat16) return safetensors::DType::kF16;
  return safetensors::DType::kF32;
}

/// The tokenizer of the configured checkpoint; ConfigError when `path` is not a directory.
mr::tokenizer::Tokenizer load_tokenizer(const sdk::Config& config) {
  const std::filesystem::path path = config.get_string("path");
  if (!std::filesystem::is_directory(path)) {
    throw ConfigError("[" + config.path() + "] path '" + path.string() + "' is not a directory");
  }
  return mr::tokenizer::Tokenizer::from_directory(path);
}

}  // namespace

TorchBackend::TorchBackend(sdk::HostContext& ctx)
    : ctx_(ctx), tokenizer_(load_tokenizer(ctx.config())) {
  const sdk::Config& config = ctx_.config();
  const std::string where = config.path();
  name_ = where.rfind("models.", 0) == 0 ? where.substr(7) : where;
  path_ = config.get_string("path");
  loaded_from_ = path_;
  const torch::Dtype dtype = parse_dtype(config.get_string("dtype"), where);
  const torch::Device device = parse_device(config.get_string("device"), where);
  if (dtype == torch::kFloat16 && device.is_cpu()) {
    throw ConfigError("[" + where +
                      "] dtype float16 needs a CUDA device (libtorch lacks float16 CPU kernels); "
                      "use bfloat16 or float32 on cpu");
  }
  max_batch_size_ = config.get_int("max_batch_size");
  continuous_batching_ = config.get_bool("continuous_batching");
  prefix_cache_ = std::make_unique<tb::PrefixCache>(config.get_int("prefix_cache_mib") << 20,
                                                    config.get_int("prefix_block_tokens"));

  torch::set_num_threads(std::max(1, ctx_.threads()));

  std::string format = config.get_string("chat_template");
  const auto options = parse_format_options(config.get_string_list("chat_format"), where);
  if (format == "auto") {
    const auto& jinja = tokenizer_.config().chat_template;
    if (!jinja) {
      ctx_.logger().info("tokenizer has no chat_template; using the plain chat format");
      format = "plain";
    } else if (*jinja == kPlainChatTemplateJinja) {
      format = "plain";
    }
  }
  try {
    template_.emplace(mr::chat::ChatTemplate::from_tokenizer(format, tokenizer_, options));
  } catch (const ConfigError& e) {
    throw ConfigError("[" + where + "] " + e.what());
  }
  stop_ids_ = template_->stop_token_ids(tokenizer_, path_ / "generation_config.json");
  template_stops_ = template_->stop_strings(tokenizer_);

  model_ = tb::load_causal_lm(path_, tb::ModelOptions{dtype, device});
  model_->eval();
  if (const std::string adapter = config.get_string("adapter"); !adapter.empty()) {
    try {
      tb::merge_lora_adapter(*model_, adapter);
    } catch (const std::exception& e) {  // Also a corrupt file's DataError, libtorch's errors.
      const std::string what = e.what();
      throw ConfigError("[" + where + "] adapter '" + adapter +
                        "': " + what.substr(0, what.find('\n')));
    }
    adapter_ = adapter;
    ctx_.logger().info("merged the LoRA adapter " + adapter + " into " + path_.string());
  }
  const auto& mc = model_->config();
  const std::int64_t configured = config.get_int("max_context");
  max_context_ = configured > 0 ? configured : mc.max_position_embeddings;
  if (static_cast<std::int64_t>(tokenizer_.vocab_size()) > mc.vocab_size) {
    throw ConfigError("[" + where + "] the tokenizer of " + path_.string() + " has " +
                      std::to_string(tokenizer_.vocab_size()) +
                      " tokens but config.json's vocab_size is " + std::to_string(mc.vocab_size));
  }
  sample_vocab_ = std::min<std::int64_t>(mc.vocab_size, tokenizer_.vocab_size());
  for (std::int64_t id = 0; id < sample_vocab_; ++id)
    if (!tokenizer_.id_to_token(id)) banned_ids_.push_back(id);
  for (const auto id : stop_ids_) {
    if (id < 0 || id >= mc.vocab_size) {
      throw BackendError("stop token id " + std::to_string(id) + " of " + path_.string() +
                         " is outside the model's vocabulary of " + std::to_string(mc.vocab_size));
    }
  }
  ctx_.logger().info(
      mc.architecture_name + " from " + path_.string() + ": " +
      std::to_string(tb::parameter_count(mc)) + " parameters, " + config.get_string("dtype") +
      " on " + device.str() + ", chat format " + template_->format().name + ", max_context " +
      std::to_string(max_context_) + ", " + std::to_string(ctx_.threads()) + " thread(s)" +
      // The CPU inference kernels in use (MR_MAX_CPU_ISA caps them); an invalid
      // MR_MAX_CPU_ISA fails here, at load, rather than at the first forward.
      (device.is_cpu() ? std::string(", CPU kernels ") + tb::isa_name(tb::small_batch_linear_isa())
                       : std::string()));
}

TorchBackend::~TorchBackend() = default;

tb::CausalLM& TorchBackend::model() {
  model_->unpack_inference_weights();
  return model_;
}

const tb::CausalLM& TorchBackend::model() const {
  // Unpacking restores the values the parameters stand for: logically const.
  model_.ptr()->unpack_inference_weights();
  return model_;
}

tb::CausalLMImpl& TorchBackend::inference_model() {
  model_->pack_inference_weights();
  return *model_;
}

sdk::ModelInfo TorchBackend::info() const {
  sdk::ModelInfo info;
  info.name = name_;
  info.architecture = model_->config().architecture_name;
  info.path = loaded_from_.string();
  info.parameters = tb::parameter_count(model_->config());
  info.context_length = max_context_;
  return info;
}

std::int64_t TorchBackend::count_tokens(std::string_view text) const {
  return static_cast<std::int64_t>(tokenizer_.encode(text).size());
}

std::vector<std::int64_t> TorchBackend::tokenize(std::string_view text) const {
  return tokenizer_.encode(text);
}

std::vector<std::int64_t> TorchBackend::encode_prompt(const sdk::Conversation& conversation) const {
  return tokenizer_.encode(template_->render(conversation, /*add_generation_prompt=*/true));
}

sdk::TokenizedExample TorchBackend::tokenize_example(const sdk::Conversation& prompt,
                                                     std::string_view response,
                                                     bool response_complete) const {
  // Encoded separately, exactly as generation sees them: the prompt (ending with the generation
  // prompt) is what generate() feeds the model, the response is what it then produces.
  const auto text = template_->render_for_training(prompt, response, response_complete);
  sdk::TokenizedExample ex;
  ex.prompt_ids = tokenizer_.encode(text.prompt_text);
  ex.response_ids = tokenizer_.encode(text.response_text);
  return ex;
}

std::vector<sdk::ScoreResult> TorchBackend::score(const std::vector<sdk::ScoreRequest>& requests) {
  std::vector<sdk::ScoreResult> results(requests.size());
  struct Item {
    std::size_t index;
    sdk::TokenizedExample ex;
    std::int64_t length;
  };
  std::vector<Item> items;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    results[i].request_id = requests[i].id;
    try {
      auto ex = tokenize_example(requests[i].messages, requests[i].completion);
      const auto length = static_cast<std::int64_t>(ex.prompt_ids.size() + ex.response_ids.size());
      if (ex.prompt_ids.empty()) throw sdk::DataError("the prompt renders to no tokens");
      if (length > max_context_) {
        throw sdk::DataError("prompt + completion have " + std::to_string(length) +
                             " tokens; max_context is " + std::to_string(max_context_));
      }
      items.push_back({i, std::move(ex), length});
    } catch (const sdk::Error& e) {
      results[i].error = e.what();
    }
  }
  // Similar lengths share a batch so that right padding stays small.
  std::stable_sort(items.begin(), items.end(),
                   [](const Item& a, const Item& b) { return a.length < b.length; });

  c10::InferenceMode guard;
  auto& model = inference_model();
  const auto device = model.device();
  constexpr std::int64_t kProjectRows = 1024;  // Bounds the [rows, vocab] logits buffer.
  for (std::size_t begin = 0; begin < items.size();
       begin += static_cast<std::size_t>(max_batch_size_)) {
    const std::size_t end =
        std::min(items.size(), begin + static_cast<std::size_t>(max_batch_size_));
    const auto b = static_cast<std::int64_t>(end - begin);
    std::int64_t t = 0;
    for (std::size_t k = begin; k < end; ++k) t = std::max(t, items[k].length);
    auto ids = torch::zeros({b, t}, torch::kLong);
    auto mask = torch::zeros({b, t}, torch::kLong);
    std::vector<std::int64_t> rows, targets;
    auto ia = ids.accessor<std::int64_t, 2>();
    auto ma = mask.accessor<std::int64_t, 2>();
    for (std::int64_t r = 0; r < b; ++r) {
      const auto& ex = items[begin + static_cast<std::size_t>(r)].ex;
      std::int64_t col = 0;
      for (const auto id : ex.prompt_ids) ia[r][col] = id, ma[r][col++] = 1;
      for (const auto id : ex.response_ids) {
        ia[r][col] = id;
        ma[r][col] = 1;
        rows.push_back(r * t + col - 1);  // Position col - 1 predicts token col.
        targets.push_back(id);
        ++col;
      }
    }
    auto hidden = model.hidden_states(ids, mask, tb::position_ids_from_mask(mask));
    hidden = hidden.reshape({b * t, hidden.size(-1)});
    auto row_index = torch::tensor(rows, torch::kLong).to(device);
    auto target_ids = torch::tensor(targets, torch::kLong).to(device);
    std::vector<double> logps(rows.size());
    for (std::int64_t s = 0; s < static_cast<std::int64_t>(rows.size()); s += kProjectRows) {
      const auto n =
          std::min<std::int64_t>(kProjectRows, static_cast<std::int64_t>(rows.size()) - s);
      auto logits = model.logits(hidden.index_select(0, row_index.narrow(0, s, n)));
      auto lp = torch::log_softmax(logits, -1)
                    .gather(1, target_ids.narrow(0, s, n).unsqueeze(1))
                    .squeeze(1)
                    .to(torch::kCPU, torch::kDouble)
                    .contiguous();
      std::copy_n(lp.data_ptr<double>(), n, logps.begin() + s);
    }
    std::size_t next = 0;
    for (std::int64_t r = 0; r < b; ++r) {
      auto& item = items[begin + static_cast<std::size_t>(r)];
      auto& result = results[item.index];
      result.token_ids = item.ex.response_ids;
      result.token_logprobs.assign(
          logps.begin() + static_cast<std::ptrdiff_t>(next),
          logps.begin() + static_cast<std::ptrdiff_t>(next + item.ex.response_ids.size()));
      next += item.ex.response_ids.size();
      result.logprob_sum =
          std::accumulate(result.token_logprobs.begin(), result.token_logprobs.end(), 0.0);
    }
  }
  return results;
}

void TorchBackend::reload(const std::filesystem::path& checkpoint_dir) {
  torch::NoGradGuard no_grad;
  model_->unpack_inference_weights();
  tb::load_weights(*model_, checkpoint_dir);
  // The loader writes the parameters' storage directly (no version bump): drop the prefix
  // cache's keys/values of the old weights here.
  if (prefix_cache_->blocks() > 0) ++counters_.invalidations;
  prefix_cache_->clear();
  loaded_from_ = checkpoint_dir;
  ctx_.logger().info("reloaded weights from " + checkpoint_dir.string());
}

// ---------------------------------------------------------------------------------------------
// Training view

torch::Tensor TorchTrainableModel::forward(const torch::Tensor& input_ids,
                                           const torch::Tensor& attention_mask) {
  return backend_.model()->forward(input_ids, attention_mask,
                                   tb::position_ids_from_mask(attention_mask));
}

torch::Tensor TorchTrainableModel::target_logprobs(const torch::Tensor& input_ids,
                                                   const torch::Tensor& attention_mask,
                                                   const torch::Tensor& target_rows,
                                                   const torch::Tensor& target_ids) {
  return backend_.model()->target_logprobs(input_ids, attention_mask,
                                           tb::position_ids_from_mask(attention_mask), target_rows,
                                           target_ids);
}

torch::Tensor TorchTrainableModel::branched_target_logprobs(const torch::Tensor& input_ids,
                                                            const torch::Tensor& branch_ids,
                                                            const torch::Tensor& position_ids,
                                                            const torch::Tensor& target_rows,
                                                            const torch::Tensor& target_ids) {
  return backend_.model()->branched_target_logprobs(input_ids, branch_ids, position_ids,
                                                    target_rows, target_ids);
}

std::vector<torch::Tensor> TorchTrainableModel::parameters() {
  return backend_.model()->trainable_parameters();  // Only the adapter's with LoRA.
}

sdk::TokenizedExample TorchTrainableModel::tokenize(const sdk::Conversation& prompt,
                                                    const std::string& response,
                                                    bool response_complete) const {
  return backend_.tokenize_example(prompt, response, response_complete);
}

void TorchTrainableModel::set_training(bool training) {
  backend_.model()->train(training);
}

void TorchTrainableModel::save(const std::filesystem::path& dir) const {
  const auto& model = *backend_.model();
  tb::SaveOptions options;
  options.dtype = disk_dtype(model.dtype());
  // Tokenizer and generation config come from the original checkpoint (a reloaded directory
  // written by save() holds the same files).
  options.copy_files_from = backend_.checkpoint_dir();
  tb::save_checkpoint(model, dir, options);
}

bool TorchTrainableModel::supports_lora() const {
  return true;
}

void TorchTrainableModel::add_lora(const sdk::LoraSettings& settings) {
  try {
    backend_.model()->add_lora(tb::to_lora_config(settings), settings.seed);
  } catch (const BackendError& e) {
    throw ConfigError(std::string("lora: ") + e.what());
  }
}

void TorchTrainableModel::set_lora_enabled(bool enabled) {
  backend_.model()->set_lora_enabled(enabled);
}

void TorchTrainableModel::save_lora(const std::filesystem::path& dir) const {
  // The adapter applies to the weights the backend loaded last (the iteration's start model).
  tb::save_lora_adapter(*backend_.model(), dir, backend_.loaded_from().string());
  if (!backend_.merged_adapter().empty() && backend_.loaded_from() == backend_.checkpoint_dir())
    backend_.logger().warn("the adapter in " + dir.string() + " was trained on " +
                           backend_.checkpoint_dir().string() + " with the adapter " +
                           backend_.merged_adapter().string() +
                           " merged in; its base_model_name_or_path names the checkpoint only "
                           "(merge-lora that adapter first to rebuild the base)");
}

void TorchTrainableModel::merge_lora() {
  backend_.model()->merge_lora();
}

void TorchTrainableModel::remove_lora() {
  backend_.model()->remove_lora();
}

bool TorchTrainableModel::set_gradient_checkpointing(bool enabled) {
  backend_.model()->set_gradient_checkpointing(enabled);
  return true;
}

std::uint64_t TorchBackend::weights_key() const {
  // In-place updates (optimizer steps, load_weights, merges) bump a tensor's version; a
  // replaced tensor has a new TensorImpl.
  std::uint64_t h = 0xcbf29ce484222325ull;
  auto add = [&h](std::uint64_t v) { h = (h ^ v) * 0x100000001b3ull; };
  auto& model = *model_;
  for (const auto& p : model.parameters()) {
    add(reinterpret_cast<std::uintptr_t>(p.unsafeGetTensorImpl()));
    add(static_cast<std::uint64_t>(p._version()));
  }
  add(model.lora_active() ? 1 : 0);
  if (model.lora_active()) {
    for (const auto& l : model.lora_layers()) {
      for (const auto* t : {&l.a, &l.b}) {
        add(reinterpret_cast<std::uintptr_t>(t->unsafeGetTensorImpl()));
        add(static_cast<std::uint64_t>(t->_version()));
      }
    }
  }
  return h;
}

std::optional<PrefillCounters> prefill_counters(const sdk::ModelBackend& backend) {
  if (const auto* torch = dynamic_cast<const TorchBackend*>(&backend))
    return torch->prefill_counters();
  return std::nullopt;
}

std::unique_ptr<sdk::ModelBackend> make_torch_backend(sdk::HostContext& ctx) {
  return std::make_unique<TorchBackend>(ctx);
}

}  // namespace mr::plugins::torch_backend
