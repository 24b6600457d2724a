// Behaviour of mr::chat: exact renderings of the built-in formats (expected strings written from
// the Hugging Face Llama-3 Instruct and Qwen2/Qwen2.5 Jinja templates), the training split
// identity, custom formats, detection, stop tokens and the errors bad input produces.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "metareward/chat/chat_template.hpp"
#include "metareward/sdk/error.hpp"
#include "metareward/tokenizer/tokenizer.hpp"
#include "skip.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using mr::chat::ChatFormat;
using mr::chat::ChatTemplate;
using mr::chat::FormatOptions;
using mr::chat::TokenId;
using mr::sdk::Conversation;
using mr::tokenizer::Tokenizer;
using Ids = std::vector<TokenId>;

namespace {

const Conversation kFull = {{"system", "You are a concise assistant."},
                            {"user", "What is 2+2?"},
                            {"assistant", "2+2 equals 4."}};
const Conversation kUser = {{"user", "What is 2+2?"}};

// The Qwen2 and Qwen2.5 templates as their tokenizer_config.json files hold them (after JSON
// decoding): Qwen2's literals contain real newlines, Qwen2.5's contain Jinja "\n" escapes.
const std::string kQwen2Template =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
const std::string kQwen25Template =
    "{%- if tools %}\n    {{- '<|im_start|>system\\n' }}\n    {%- if messages[0]['role'] == "
    "'system' %}\n        {{- messages[0]['content'] }}\n    {%- else %}\n        {{- 'You are "
    "Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}\n    {%- endif %}\n"
    "{%- else %}\n    {%- if messages[0]['role'] == 'system' %}\n        {{- "
    "'<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n    {%- else %}\n"
    "        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a "
    "helpful assistant.<|im_end|>\\n' }}\n    {%- endif %}\n{%- endif %}\n";

fs::path fixture_dir(const std::string& name) {
  return fs::path(MR_SHARED_DIR) / "fixtures" / "tokenizers" / name;
}

// Loads a shared fixture tokenizer once per test binary; nullopt when absent, and the running test
// case is then marked skipped (callers return).
const std::optional<Tokenizer>& fixture(const std::string& name) {
  static std::map<std::string, std::optional<Tokenizer>> cache;
  auto it = cache.find(name);
  if (it == cache.end()) {
    std::optional<Tokenizer> tok;
    if (fs::exists(fixture_dir(name) / "tokenizer.json")) {
      tok = Tokenizer::from_directory(fixture_dir(name));
    }
    it = cache.emplace(name, std::move(tok)).first;
  }
  if (!it->second) {
    MR_MARK_SKIPPED("tokenizer fixture " << fixture_dir(name).string() << " is absent");
  }
  return it->second;
}

fs::path scratch_dir(const std::string& name) {
  const fs::path dir = fs::path(MR_BINARY_DIR) / "tests" / "chat_template_scratch" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// A byte-level tokenizer (ids 0..255 = bytes, then the specials) written to a scratch folder.
Tokenizer byte_level(const std::string& name, mr::tokenizer::ByteLevelSpecials specials) {
  const fs::path dir = scratch_dir(name);
  mr::tokenizer::write_byte_level_tokenizer(dir, specials);
  return Tokenizer::from_directory(dir);
}

// Not cleared first: test cases that ctest runs in parallel share this folder (distinct names).
fs::path write_file(const std::string& name, const std::string& text) {
  const fs::path dir = fs::path(MR_BINARY_DIR) / "tests" / "chat_template_scratch" / "files";
  fs::create_directories(dir);
  const fs::path path = dir / name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const mr::sdk::Error& e) {
    return e.what();
  }
  return "(no error)";
}

Conversation with_response(Conversation prompt, const std::string& response) {
  prompt.push_back({"assistant", response});
  return prompt;
}

}  // namespace

TEST_CASE("chat_template llama3: renders like the Llama-3 Instruct template", "[chat][llama3]") {
  const ChatTemplate t(mr::chat::llama3_format());
  SECTION("system + user + assistant, no generation prompt") {
    CHECK(t.render(kFull, false) ==
          "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
          "You are a concise assistant.<|eot_id|>"
          "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
          "<|start_header_id|>assistant<|end_header_id|>\n\n2+2 equals 4.<|eot_id|>");
  }
  SECTION("a user turn with the generation prompt") {
    CHECK(t.render(kUser, true) ==
          "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
          "<|start_header_id|>assistant<|end_header_id|>\n\n");
  }
  SECTION("content is trimmed like `| trim`, Unicode spaces included, inner space kept") {
    CHECK(t.render({{"user", " \n\t Hi  there \u3000\n"}}, false) ==
          "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi  there<|eot_id|>");
  }
  SECTION("a system message after the first turn is rendered in place as a system turn") {
    CHECK(t.render({{"user", "a"}, {"system", "b"}}, false) ==
          "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\na<|eot_id|>"
          "<|start_header_id|>system<|end_header_id|>\n\nb<|eot_id|>");
  }
  SECTION("an empty conversation is the BOS text (plus the generation prompt)") {
    CHECK(t.render({}, false) == "<|begin_of_text|>");
    CHECK(t.render({}, true) ==
          "<|begin_of_text|><|start_header_id|>assistant<|end_header_id|>\n\n");
  }
}

TEST_CASE("chat_template chatml: renders like the Qwen2/Qwen2.5 templates", "[chat][chatml]") {
  SECTION("system + user + assistant, no default system message") {
    const ChatTemplate t(mr::chat::chatml_format());
    CHECK(t.render(kFull, false) ==
          "<|im_start|>system\nYou are a concise assistant.<|im_end|>\n"
          "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
          "<|im_start|>assistant\n2+2 equals 4.<|im_end|>\n");
    CHECK(t.render(kUser, true) ==
          "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n");
  }
  SECTION("content is not trimmed") {
    const ChatTemplate t(mr::chat::chatml_format());
    CHECK(t.render({{"user", "  Hi \n"}}, false) == "<|im_start|>user\n  Hi \n<|im_end|>\n");
  }
  SECTION("Qwen2.5: the default system message only when the conversation has none") {
    const ChatTemplate t(mr::chat::chatml_format(
        "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."));
    CHECK(t.render(kUser, true) ==
          "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
          "assistant.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
          "<|im_start|>assistant\n");
    CHECK(t.render(kFull, false) ==
          "<|im_start|>system\nYou are a concise assistant.<|im_end|>\n"
          "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
          "<|im_start|>assistant\n2+2 equals 4.<|im_end|>\n");
  }
}

TEST_CASE("chat_template plain: the documented byte-level layout", "[chat][plain]") {
  const ChatTemplate t(mr::chat::plain_format("<|bos|>", "<|eos|>"));
  CHECK(t.render(kFull, false) ==
        "<|bos|>System: You are a concise assistant.\nUser: What is 2+2?\n"
        "Assistant: 2+2 equals 4.<|eos|>\n");
  CHECK(t.render(kUser, true) == "<|bos|>User: What is 2+2?\nAssistant: ");
  CHECK(t.format().end_of_turn == "<|eos|>");
  CHECK(ChatTemplate(mr::chat::plain_format("", "<|eos|>")).render(kUser, false) ==
        "User: What is 2+2?\n");
}

TEST_CASE("chat_template training: prompt_text + response_text is the full rendering",
          "[chat][training]") {
  FormatOptions custom = {{"bos", "<s>"},
                          {"user_prefix", "[INST] "},
                          {"user_suffix", " [/INST]"},
                          {"system_prefix", "<<SYS>>"},
                          {"system_suffix", "<</SYS>>"},
                          {"generation_prompt", " "},
                          {"end_of_turn", "</s>"},
                          {"default_system", "Be nice."}};
  const std::vector<ChatFormat> formats = {mr::chat::llama3_format(), mr::chat::chatml_format(),
                                           mr::chat::chatml_format("You are a helpful assistant."),
                                           mr::chat::plain_format("<|bos|>", "<|eos|>"),
                                           mr::chat::custom_format(custom)};
  const std::vector<Conversation> prompts = {{},
                                             kUser,
                                             {{"system", "Sys."}, {"user", "Q1"}},
                                             {{"user", "Q1"}, {"assistant", "A1"}, {"user", "Q2"}}};
  for (const auto& format : formats) {
    const ChatTemplate t(format);
    for (const auto& prompt : prompts) {
      for (const std::string response : {"4.", "  padded answer \n", ""}) {
        INFO("format " << format.name << ", " << prompt.size() << " prompt messages, response \""
                       << response << "\"");
        const auto split = t.render_for_training(prompt, response);
        CHECK(split.prompt_text == t.render(prompt, true));
        CHECK(split.prompt_text + split.response_text ==
              t.render(with_response(prompt, response), false));
        CHECK(split.response_text.ends_with(format.assistant.suffix));
        CHECK(split.response_text.find(format.end_of_turn) != std::string::npos);
      }
    }
  }
  SECTION("llama3 response text is the trimmed content plus <|eot_id|>") {
    const auto split = ChatTemplate(mr::chat::llama3_format()).render_for_training(kUser, " 4. \n");
    CHECK(split.response_text == "4.<|eot_id|>");
  }
  SECTION("chatml response text keeps the newline the template writes after <|im_end|>") {
    const auto split = ChatTemplate(mr::chat::chatml_format()).render_for_training(kUser, "4.");
    CHECK(split.response_text == "4.<|im_end|>\n");
    CHECK(split.prompt_text == "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n");
  }
  SECTION("a prompt that already ends with an assistant turn is rejected") {
    const ChatTemplate t(mr::chat::llama3_format());
    CHECK_THROWS_AS(t.render_for_training(kFull, "x"), mr::sdk::DataError);
    CHECK_THAT(error_of([&] { t.render_for_training(kFull, "x"); }),
               Contains("ends with an assistant message (message 3)"));
  }
}

TEST_CASE("chat_template custom: a format built from string options", "[chat][custom]") {
  SECTION("every affix is used where documented") {
    const ChatTemplate t(mr::chat::custom_format({{"bos", "<s>"},
                                                  {"system_prefix", "S:"},
                                                  {"system_suffix", "|"},
                                                  {"user_prefix", "U:"},
                                                  {"user_suffix", "|"},
                                                  {"assistant_prefix", "A:"},
                                                  {"assistant_suffix", "<end>;"},
                                                  {"end_of_turn", "<end>"},
                                                  {"default_system", "D"}}));
    CHECK(t.format().name == "custom");
    CHECK(t.format().generation_prompt == "A:");
    CHECK(t.render(kUser, true) == "<s>S:D|U:What is 2+2?|A:");
    CHECK(t.render({{"system", "X"}, {"assistant", "y"}}, false) == "<s>S:X|A:y<end>;");
  }
  SECTION("generation_prompt alone also sets the assistant prefix") {
    const auto f = mr::chat::custom_format({{"generation_prompt", "Bot: "}, {"end_of_turn", "#"}});
    CHECK(f.assistant.prefix == "Bot: ");
    CHECK(f.assistant.suffix == "#");
    CHECK_FALSE(f.trim_content);
    CHECK(mr::chat::custom_format({{"end_of_turn", "#"}, {"trim_content", "true"}}).trim_content);
  }
  SECTION("options override a built-in; end_of_turn keeps the text after it") {
    const auto f = mr::chat::apply_options(mr::chat::plain_format("", "<|eos|>"),
                                           {{"end_of_turn", "<|end|>"}, {"user_prefix", "Q: "}});
    CHECK(f.name == "plain");
    CHECK(f.assistant.suffix == "<|end|>\n");
    CHECK(ChatTemplate(f).render({{"user", "a"}, {"assistant", "b"}}, false) ==
          "Q: a\nAssistant: b<|end|>\n");
    const auto qwen =
        mr::chat::apply_options(mr::chat::chatml_format("You are Qwen."), {{"default_system", ""}});
    CHECK(ChatTemplate(qwen).render(kUser, false) == "<|im_start|>user\nWhat is 2+2?<|im_end|>\n");
  }
  SECTION("malformed options are rejected with the reason") {
    using mr::chat::custom_format;
    CHECK_THAT(error_of([] {
                 custom_format({{"end_of_turn", "#"}, {"user_prefx", "U"}});
               }),
               Contains("'user_prefx' is unknown") && Contains("user_prefix"));
    CHECK_THAT(error_of([] {
                 custom_format({{"user_prefix", "U"}});
               }),
               Contains("end_of_turn is empty"));
    CHECK_THAT(error_of([] {
                 custom_format({{"end_of_turn", "#"}, {"assistant_suffix", "\n"}});
               }),
               Contains("must start with end_of_turn"));
    CHECK_THAT(
        error_of([] {
          custom_format(
              {{"end_of_turn", "#"}, {"assistant_prefix", "A:"}, {"generation_prompt", "B:"}});
        }),
        Contains("must equal assistant_prefix"));
    CHECK_THAT(error_of([] {
                 custom_format({{"end_of_turn", "#"}, {"trim_content", "yes"}});
               }),
               Contains("trim_content must be \"true\" or \"false\""));
    CHECK_THROWS_AS(custom_format({}), mr::sdk::ConfigError);
    ChatFormat broken = mr::chat::llama3_format();
    broken.generation_prompt = "x";
    CHECK_THROWS_AS(ChatTemplate(broken), mr::sdk::ConfigError);
  }
}

TEST_CASE("chat_template roles: unknown roles are errors naming the message",
          "[chat][validation]") {
  const ChatTemplate t(mr::chat::chatml_format());
  const Conversation bad = {{"user", "a"}, {"tool", "b"}};
  CHECK_THROWS_AS(t.render(bad, false), mr::sdk::DataError);
  CHECK_THAT(error_of([&] { t.render(bad, false); }),
             Contains("message 2 has role 'tool'") && Contains("system, user, assistant"));
  CHECK_THROWS_AS(t.render({{"Assistant", "x"}}, false), mr::sdk::DataError);
  CHECK_THROWS_AS(t.render_for_training({{"", "x"}}, "y"), mr::sdk::DataError);
}

TEST_CASE("chat_template detection: the format a Jinja chat_template uses", "[chat][detect]") {
  using mr::chat::chatml_default_system;
  using mr::chat::detect_format;
  SECTION("markers decide; anything else is unknown") {
    CHECK(detect_format(kQwen2Template) == std::string("chatml"));
    CHECK(detect_format("{{ '<|start_header_id|>' + m.role }}") == std::string("llama3"));
    CHECK_FALSE(detect_format("{{ messages }}").has_value());
    CHECK_FALSE(detect_format("").has_value());
  }
  SECTION("the default system message is read from the template's literal") {
    CHECK(chatml_default_system(kQwen2Template) == "You are a helpful assistant.");
    CHECK(chatml_default_system(kQwen25Template) ==
          "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
    CHECK(chatml_default_system("{{ '<|im_start|>system\\n' + messages[0].content }}").empty());
    CHECK(chatml_default_system("{{ '<|im_start|>system\\nunterminated").empty());
    CHECK(chatml_default_system("{{ '<|im_start|>system\\n<|im_end|>' }}").empty());
    CHECK(chatml_default_system("{{ \"<|im_start|>system\\nIt\\'s me.<|im_end|>\" }}") ==
          "It's me.");
  }
  SECTION("the shared fixtures: llama3 -> llama3, qwen3 -> chatml without a default system") {
    const auto& llama = fixture("llama3");
    const auto& qwen = fixture("qwen3");
    if (!llama || !qwen) return;
    REQUIRE(llama->config().chat_template.has_value());
    REQUIRE(qwen->config().chat_template.has_value());
    CHECK(detect_format(*llama->config().chat_template) == std::string("llama3"));
    CHECK(detect_format(*qwen->config().chat_template) == std::string("chatml"));
    const auto l = ChatTemplate::from_tokenizer("auto", *llama);
    CHECK(l.format().name == "llama3");
    CHECK(l.format().bos == "<|begin_of_text|>");
    const auto q = ChatTemplate::from_tokenizer("auto", *qwen);
    CHECK(q.format().name == "chatml");
    CHECK(q.format().default_system.empty());  // Qwen3's template writes none.
    CHECK(q.format().bos.empty());
  }
}

TEST_CASE("chat_template tokenization: specials become single ids in the fixture tokenizers",
          "[chat][fixture]") {
  SECTION("llama3") {
    const auto& tok = fixture("llama3");
    if (!tok) return;
    const auto t = ChatTemplate::from_tokenizer("llama3", *tok);
    const std::string text = t.render(kFull, false);
    const Ids ids = tok->encode(text);
    REQUIRE(ids.size() > 10);
    CHECK(ids.front() == 128000);  // <|begin_of_text|>
    CHECK(std::count(ids.begin(), ids.end(), TokenId{128000}) == 1);
    CHECK(std::count(ids.begin(), ids.end(), TokenId{128006}) == 3);  // <|start_header_id|>
    CHECK(std::count(ids.begin(), ids.end(), TokenId{128007}) == 3);  // <|end_header_id|>
    CHECK(std::count(ids.begin(), ids.end(), TokenId{128009}) == 3);  // <|eot_id|>
    CHECK(ids[1] == 128006);
    CHECK(tok->decode(std::vector<TokenId>(ids.begin() + 2, ids.begin() + 3)) == "system");
    CHECK(ids[3] == 128007);
    CHECK(ids.back() == 128009);
    CHECK(tok->decode(ids) == text);
    // Tokenizing prompt and response separately gives the same ids (specials bound both sides).
    const auto split = t.render_for_training(kUser, "4.");
    Ids joined = tok->encode(split.prompt_text);
    const Ids response = tok->encode(split.response_text);
    joined.insert(joined.end(), response.begin(), response.end());
    CHECK(joined == tok->encode(t.render(with_response(kUser, "4."), false)));
  }
  SECTION("qwen3 (chatml)") {
    const auto& tok = fixture("qwen3");
    if (!tok) return;
    const std::string text = ChatTemplate::from_tokenizer("chatml", *tok).render(kUser, true);
    const Ids ids = tok->encode(text);
    CHECK(ids.front() == 151644);  // <|im_start|>
    CHECK(std::count(ids.begin(), ids.end(), TokenId{151644}) == 2);
    CHECK(std::count(ids.begin(), ids.end(), TokenId{151645}) == 1);  // <|im_end|>
    CHECK(tok->decode(ids) == text);
  }
}

TEST_CASE("chat_template stop tokens: eos ids, generation_config and the end-of-turn token",
          "[chat][stop]") {
  SECTION("llama3 fixture with the Llama-3 Instruct generation_config list") {
    const auto& tok = fixture("llama3");
    if (!tok) return;
    const auto t = ChatTemplate::from_tokenizer("auto", *tok);
    const auto gen = write_file("llama3_generation_config.json",
                                R"({"bos_token_id": 128000, "eos_token_id": [128001, 128009]})");
    CHECK(t.stop_token_ids(*tok, gen) == Ids{128001, 128009});
    // Without generation_config: the tokenizer eos (<|end_of_text|>) and <|eot_id|>.
    CHECK(t.stop_token_ids(*tok, {}) == Ids{128001, 128009});
    CHECK(t.stop_token_ids(*tok, scratch_dir("none") / "generation_config.json") ==
          Ids{128001, 128009});
    CHECK(t.stop_strings(*tok).empty());
    const auto single = write_file("single.json", R"({"eos_token_id": 128008})");
    CHECK(t.stop_token_ids(*tok, single) == Ids{128001, 128008, 128009});
    const auto out_of_range = write_file("oor.json", R"({"eos_token_id": [128001, 999999]})");
    CHECK_THAT(error_of([&] { t.stop_token_ids(*tok, out_of_range); }),
               Contains("oor.json") && Contains("eos_token_id 999999 is not a token"));
  }
  SECTION("qwen3 fixture: <|im_end|> is both eos and end of turn") {
    const auto& tok = fixture("qwen3");
    if (!tok) return;
    CHECK(ChatTemplate::from_tokenizer("chatml", *tok).stop_token_ids(*tok, {}) == Ids{151645});
  }
  SECTION("byte-level tokenizer with the plain format") {
    const Tokenizer tok = byte_level("plain", {});  // <|bos|> 256, <|eos|> 257, <|pad|> 258
    const auto t = ChatTemplate::from_tokenizer("plain", tok);
    CHECK(t.format().bos == "<|bos|>");
    CHECK(t.format().end_of_turn == "<|eos|>");
    CHECK(t.stop_token_ids(tok, {}) == Ids{257});
    CHECK(t.stop_strings(tok).empty());
    CHECK(tok.encode(t.render(kUser, true)).front() == 256);
    // An end-of-turn that is plain text cannot be a stop id; it becomes a stop string.
    const auto text_eot = ChatTemplate::from_tokenizer("plain", tok, {{"end_of_turn", "\n\n"}});
    CHECK(text_eot.stop_token_ids(tok, {}) == Ids{257});
    CHECK(text_eot.stop_strings(tok) == std::vector<std::string>{"\n\n"});
  }
}

TEST_CASE("chat_template generation_config: eos_token_id parsing", "[chat][stop]") {
  using mr::chat::parse_generation_config_eos;
  SECTION("an integer, a list, null or absent") {
    CHECK(parse_generation_config_eos(R"({"eos_token_id": 2})", "g") == Ids{2});
    CHECK(parse_generation_config_eos(R"({"eos_token_id": [1, 0, 1]})", "g") == Ids{1, 0, 1});
    CHECK(parse_generation_config_eos(R"({"eos_token_id": []})", "g").empty());
    CHECK(parse_generation_config_eos(R"({"eos_token_id": null})", "g").empty());
    CHECK(parse_generation_config_eos(R"({"temperature": 0.6})", "g").empty());
  }
  SECTION("malformed content names the source and what was wrong") {
    CHECK_THAT(error_of([] { parse_generation_config_eos("{", "gen.json"); }),
               Contains("gen.json: malformed JSON"));
    CHECK_THAT(error_of([] { parse_generation_config_eos("[1]", "gen.json"); }),
               Contains("expected a JSON object, got array"));
    for (const char* bad :
         {R"({"eos_token_id": -1})", R"({"eos_token_id": "2"})", R"({"eos_token_id": 2.5})",
          R"({"eos_token_id": [1, true]})", R"({"eos_token_id": [[1]]})",
          R"({"eos_token_id": {"id": 1}})", R"({"eos_token_id": 18446744073709551615})"}) {
      INFO(bad);
      CHECK_THROWS_AS(parse_generation_config_eos(bad, "gen.json"), mr::sdk::BackendError);
      CHECK_THAT(error_of([&] { parse_generation_config_eos(bad, "gen.json"); }),
                 Contains("eos_token_id must be a non-negative integer or a list of them"));
    }
  }
  SECTION("read_generation_config_eos reads a file and names it when missing") {
    CHECK(mr::chat::read_generation_config_eos(write_file("ok.json", R"({"eos_token_id": 7})")) ==
          Ids{7});
    CHECK_THAT(error_of([] { mr::chat::read_generation_config_eos("/nonexistent/gen.json"); }),
               Contains("/nonexistent/gen.json: cannot open"));
  }
}

TEST_CASE("chat_template from_tokenizer: choosing a format for a tokenizer", "[chat][resolve]") {
  mr::tokenizer::ByteLevelSpecials qwen_like;
  qwen_like.bos_token = "";
  qwen_like.eos_token = "<|im_end|>";
  qwen_like.additional = {"<|im_start|>"};
  SECTION("auto on a Qwen2-style template picks chatml with its default system message") {
    qwen_like.chat_template = kQwen2Template;
    const Tokenizer tok = byte_level("qwen2_like", qwen_like);
    const auto t = ChatTemplate::from_tokenizer("auto", tok);
    CHECK(t.format().name == "chatml");
    CHECK(t.render(kUser, true) ==
          "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
          "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n");
    // Options still override the detected default.
    CHECK(ChatTemplate::from_tokenizer("auto", tok, {{"default_system", ""}})
              .format()
              .default_system.empty());
  }
  SECTION("auto without a chat_template, or with an unknown one, lists the formats") {
    const Tokenizer none = byte_level("no_template", {});
    CHECK_THAT(error_of([&] { ChatTemplate::from_tokenizer("auto", none); }),
               Contains("has no chat_template") && Contains("llama3, chatml, plain, custom"));
    mr::tokenizer::ByteLevelSpecials odd;
    odd.chat_template = "{{ messages }}";
    const Tokenizer unknown = byte_level("odd_template", odd);
    CHECK_THAT(error_of([&] { ChatTemplate::from_tokenizer("auto", unknown); }),
               Contains("not a known format") && Contains("llama3, chatml, plain, custom"));
    // An explicit format needs no template.
    CHECK(ChatTemplate::from_tokenizer("plain", unknown).format().name == "plain");
  }
  SECTION("a built-in format whose marker tokens the tokenizer lacks is rejected") {
    const Tokenizer tok = byte_level("markers", {});
    CHECK_THAT(error_of([&] { ChatTemplate::from_tokenizer("chatml", tok); }),
               Contains("'<|im_start|>' to be an added token"));
    CHECK_THAT(error_of([&] { ChatTemplate::from_tokenizer("llama3", tok); }),
               Contains("'<|start_header_id|>' to be an added token"));
  }
  SECTION("unknown names, plain without eos and custom without options are errors") {
    const Tokenizer tok = byte_level("names", qwen_like);
    CHECK_THAT(error_of([&] { ChatTemplate::from_tokenizer("chatml2", tok); }),
               Contains("'chatml2' is unknown") && Contains("auto, llama3, chatml, plain, custom"));
    mr::tokenizer::ByteLevelSpecials no_eos;
    no_eos.eos_token = "";
    const Tokenizer bare = byte_level("no_eos", no_eos);
    CHECK_THAT(error_of([&] { ChatTemplate::from_tokenizer("plain", bare); }),
               Contains("has no eos_token"));
    CHECK(ChatTemplate::from_tokenizer("plain", bare, {{"end_of_turn", "<|pad|>"}})
              .stop_token_ids(bare, {}) == Ids{257});  // <|bos|> 256, <|pad|> 257
    CHECK_THAT(error_of([&] { ChatTemplate::from_tokenizer("custom", tok); }),
               Contains("end_of_turn is empty"));
    CHECK(ChatTemplate::from_tokenizer("custom", tok, {{"end_of_turn", "<|im_end|>"}})
              .format()
              .name == "custom");
  }
}

TEST_CASE("chat_template trim: Python str.strip() whitespace on UTF-8", "[chat][trim]") {
  using mr::chat::trim_whitespace;
  CHECK(trim_whitespace(" \t\r\n\v\f a b \x1c\x1f") == "a b");
  CHECK(trim_whitespace("\u00a0\u2003x\u3000\u2028") == "x");
  CHECK(trim_whitespace("\u200bx\u200b") == "\u200bx\u200b");  // zero-width space is not space
  CHECK(trim_whitespace("  \xff\xfe  ") == "\xff\xfe");        // ill-formed bytes are kept
  CHECK(trim_whitespace(" \xe3\x80") == "\xe3\x80");
  CHECK(trim_whitespace("\xc0\xa0x") ==
        "\xc0\xa0x");  // overlong U+0020 is not a space           // truncated U+3000 is kept
  CHECK(trim_whitespace("\u65e5 ") == "\u65e5");
  CHECK(trim_whitespace("   ").empty());
  CHECK(trim_whitespace("").empty());
}
