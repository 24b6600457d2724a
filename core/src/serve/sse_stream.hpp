// `metareward serve`: a streamed (`"stream": true`) response over httplib's chunked content
// provider. The backend yields each completion whole, so the stream is the OpenAI event sequence
// of the finished result (openai_response.hpp), sent as soon as it is ready. While the request
// waits, an SSE comment (`: keep-alive`) is written every `ping_interval`; when such a write
// fails the client has gone and the request is taken out of the queue (a batch already inside
// generate() cannot be interrupted; its result is dropped).
#pragma once

#include <chrono>
#include <memory>

#include <httplib.h>

#include "batch_queue.hpp"
#include "openai_response.hpp"

namespace mr::core::serve {

/// Makes `res` stream `pending`'s outcome. `hold` lives as long as the response (the server's
/// in-flight count).
void stream_response(httplib::Response& res,
                     BatchQueue& queue,
                     std::shared_ptr<PendingGeneration> pending,
                     ResponseHeader header,
                     bool include_usage,
                     std::shared_ptr<void> hold,
                     std::chrono::milliseconds ping_interval);

}  // namespace mr::core::serve
