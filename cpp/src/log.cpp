// The "pgsafe.core" spdlog logger and its forwarding sink. The sink takes no lock of its own:
// the forwarder the bindings install serialises on the GIL.
#include "pgsafe/log.hpp"

#include <spdlog/details/null_mutex.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <mutex>
#include <utility>

namespace pgsafe::log {

namespace {

std::mutex g_forwarder_mutex;
std::shared_ptr<Forwarder> g_forwarder;  // replaced atomically under the mutex

class ForwardingSink final : public spdlog::sinks::base_sink<spdlog::details::null_mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    std::shared_ptr<Forwarder> forwarder;
    {
      std::lock_guard<std::mutex> guard(g_forwarder_mutex);
      forwarder = g_forwarder;
    }
    std::string text(msg.payload.data(), msg.payload.size());
    if (forwarder && *forwarder) {
      (*forwarder)(static_cast<int>(msg.level), text);
    } else if (msg.level >= spdlog::level::warn) {
      fprintf(stderr, "pgsafe.core: %s\n", text.c_str());
    }
  }
  void flush_() override {}
};

std::shared_ptr<spdlog::logger> make_logger() {
  auto logger = std::make_shared<spdlog::logger>("pgsafe.core", std::make_shared<ForwardingSink>());
  logger->set_level(spdlog::level::debug);
  return logger;
}

}  // namespace

std::shared_ptr<spdlog::logger> core() {
  static std::shared_ptr<spdlog::logger> logger = make_logger();
  return logger;
}

void set_forwarder(Forwarder forwarder) {
  auto next = forwarder ? std::make_shared<Forwarder>(std::move(forwarder)) : nullptr;
  std::lock_guard<std::mutex> guard(g_forwarder_mutex);
  g_forwarder = std::move(next);
}

void set_level(spdlog::level::level_enum level) { core()->set_level(level); }

}  // namespace pgsafe::log
