// Streamed responses of `metareward serve` (sse_stream.hpp).
#include "sse_stream.hpp"

#include <spdlog/spdlog.h>

#include "api_error.hpp"

namespace mr::core::serve {

void stream_response(httplib::Response& res,
                     BatchQueue& queue,
                     std::shared_ptr<PendingGeneration> pending,
                     ResponseHeader header,
                     bool include_usage,
                     std::shared_ptr<void> hold,
                     std::chrono::milliseconds ping_interval) {
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  // One call writes the whole stream and ends it: httplib calls the provider again only while
  // the server is not stopping, and a drain must still finish this response.
  res.set_chunked_content_provider(
      "text/event-stream", [&queue, pending, header, include_usage, hold, ping_interval](
                               std::size_t, httplib::DataSink& sink) {
        const auto write = [&sink](const std::string& text) {
          return sink.write(text.data(), text.size());
        };
        while (pending->outcome.wait_for(ping_interval) != std::future_status::ready) {
          if (!write(": keep-alive\n\n")) {
            if (!queue.cancel(pending))
              spdlog::debug(
                  "serve: request '{}': the client went away during generation; its result "
                  "is dropped",
                  header.id);
            return false;
          }
        }
        std::vector<std::string> events;
        try {
          events = stream_events(header, result_or_throw(pending->outcome.get()), include_usage);
        } catch (const ApiError& e) {
          // The status line (200) has gone out: the error is an event, as OpenAI sends them.
          spdlog::log(e.status() >= 500 ? spdlog::level::err : spdlog::level::debug,
                      "serve: request '{}' failed ({}): {}", header.id, e.status(), e.what());
          events = {sse_event(error_body(e)), "data: [DONE]\n\n"};
        }
        for (const auto& event : events)
          if (!write(event)) return false;
        sink.done();
        return true;
      });
}

}  // namespace mr::core::serve
