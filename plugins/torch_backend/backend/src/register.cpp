// Registration of the torch backend library: the `torch` model backend and its commands.
#include <iostream>

#include "metareward/torch_backend_plugin/torch_backend.hpp"

namespace mr::plugins::torch_backend {

void register_torch_backend_plugins(mr::sdk::Registrar& r) {
  r.add<mr::sdk::ModelBackend>(
      "torch", kLibraryVersion,
      "Llama/Qwen2 causal LM on libtorch from a Hugging Face checkpoint: batched KV-cache "
      "sampling with continuous batching and a cross-request prefix cache, scoring and DPO/SFT "
      "training",
      torch_backend_schema(), [](mr::sdk::HostContext& ctx) { return make_torch_backend(ctx); });
  r.add_command({"init-model",
                 "Write a randomly initialised checkpoint (with a byte-level tokenizer unless "
                 "--tokenizer is given)",
                 [](const std::vector<std::string>& args, mr::sdk::HostContext&) {
                   return init_model_command(args, std::cout, std::cerr);
                 }});
  r.add_command({"merge-lora",
                 "Fold a PEFT LoRA adapter into its base checkpoint and write the merged model",
                 [](const std::vector<std::string>& args, mr::sdk::HostContext&) {
                   return merge_lora_command(args, std::cout, std::cerr);
                 }});
  r.add_command({"tokenize", "Tokenize JSONL {\"text\"} rows from stdin with a tokenizer.json",
                 [](const std::vector<std::string>& args, mr::sdk::HostContext&) {
                   return tokenize_command(args, std::cin, std::cout, std::cerr);
                 }});
}

}  // namespace mr::plugins::torch_backend
