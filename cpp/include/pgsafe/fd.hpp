// An owned file descriptor (closed on destruction) and the text of errno, for the modules that
// read and write files with pread/pwrite rather than streams.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace pgsafe {

class Fd {
 public:
  explicit Fd(int fd = -1) noexcept : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const noexcept { return fd_; }
  void reset(int fd) noexcept {
    reset();
    fd_ = fd;
  }
  void reset() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  // Gives up ownership (the caller closes it, checking the result).
  int release() noexcept {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

inline std::string errno_text() { return std::strerror(errno); }

}  // namespace pgsafe
