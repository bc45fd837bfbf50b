// The core's logger ("pgsafe.core"). The bindings install a sink that forwards every record to
// Python's `logging`, so pytest's caplog and notebooks see what the core does.
#pragma once

#include <spdlog/spdlog.h>

#include <functional>
#include <memory>
#include <string>

namespace pgsafe::log {

// Receives (spdlog level, message). Called from whichever thread logged.
using Forwarder = std::function<void(int level, const std::string& message)>;

std::shared_ptr<spdlog::logger> core();
// Install (or, with an empty function, remove) the forwarder. Without one, records go to stderr
// at warning level and above.
void set_forwarder(Forwarder forwarder);
void set_level(spdlog::level::level_enum level);

}  // namespace pgsafe::log
