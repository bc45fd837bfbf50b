// Forwards the core's spdlog records to Python's logging.getLogger("pgsafe.core"), holding the
// GIL as the sink's only lock.
#include <pybind11/functional.h>

#include "bindings.hpp"
#include "pgsafe/log.hpp"

namespace pgsafe::py {

namespace {

int python_level(int spd) {
  switch (static_cast<spdlog::level::level_enum>(spd)) {
    case spdlog::level::trace:
      return 5;
    case spdlog::level::debug:
      return 10;
    case spdlog::level::info:
      return 20;
    case spdlog::level::warn:
      return 30;
    case spdlog::level::err:
      return 40;
    default:
      return 50;
  }
}

}  // namespace

void register_log(pybind11::module_& m) {
  auto logging = pybind11::module_::import("logging");
  // Kept alive by the module for as long as the interpreter runs; cleared at exit.
  auto logger = std::make_shared<pybind11::object>(logging.attr("getLogger")("pgsafe.core"));
  log::set_forwarder([logger](int level, const std::string& message) {
    if (!Py_IsInitialized()) return;
    pybind11::gil_scoped_acquire gil;
    int py_level = python_level(level);
    try {
      if (logger->attr("isEnabledFor")(py_level).cast<bool>()) {
        logger->attr("log")(py_level, "%s", message);
      }
    } catch (pybind11::error_already_set& e) {
      e.discard_as_unraisable("pgsafe.core log forwarding");
    }
  });
  auto atexit = pybind11::module_::import("atexit");
  atexit.attr("register")(pybind11::cpp_function([] { log::set_forwarder({}); }));
  m.def(
      "set_log_level",
      [](int python_level) {
        using L = spdlog::level::level_enum;
        L level = python_level <= 5    ? L::trace
                  : python_level <= 10 ? L::debug
                  : python_level <= 20 ? L::info
                  : python_level <= 30 ? L::warn
                  : python_level <= 40 ? L::err
                                       : L::critical;
        log::set_level(level);
      },
      pybind11::arg("level"), "Lowest Python logging level the core emits (default DEBUG).");
  m.def(
      "_log",
      [](int level, const std::string& message) {
        log::core()->log(static_cast<spdlog::level::level_enum>(level), message);
      },
      "Emit a record through the core logger (tests use it to check forwarding).");
}

}  // namespace pgsafe::py
