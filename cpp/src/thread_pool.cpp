// The supervision of a parallel run's worker threads.
#include "pgsafe/thread_pool.hpp"

#include <algorithm>
#include <chrono>
#include <utility>

#include "pgsafe/conn.hpp"
#include "pgsafe/errors.hpp"
#include "pgsafe/log.hpp"

namespace pgsafe {

void WorkerPool::fail(std::exception_ptr e) {
  std::lock_guard<std::mutex> guard(mutex);
  if (!abort) error = std::move(e);
  abort = true;
  changed.notify_all();
}

void WorkerPool::enter(Connection* c) {
  std::lock_guard<std::mutex> guard(mutex);
  running.push_back(c);
}

void WorkerPool::leave(Connection* c) {
  std::lock_guard<std::mutex> guard(mutex);
  running.erase(std::remove(running.begin(), running.end(), c), running.end());
  ++finished;
  changed.notify_all();
}

void supervise(WorkerPool& pool, std::vector<std::thread>& threads,
               const std::function<void()>& report, const char* what) {
  bool interrupted = false;
  int reported = -1;
  {
    std::unique_lock<std::mutex> lock(pool.mutex);
    while (pool.finished < static_cast<int>(threads.size())) {
      pool.changed.wait_for(lock, std::chrono::milliseconds(100));
      if (!pool.abort) {
        lock.unlock();
        bool stop = interrupt_requested();
        lock.lock();
        if (stop && !pool.abort) {
          log::core()->warn("interrupted: cancelling the {}'s statements on the server", what);
          interrupted = true;
          pool.abort = true;
          pool.changed.notify_all();
        }
      }
      if (pool.abort) {
        for (Connection* c : pool.running) c->cancel();
        continue;
      }
      if (report && pool.done != reported) {
        reported = pool.done;
        lock.unlock();
        try {
          report();
        } catch (...) {
          pool.fail(std::current_exception());
        }
        lock.lock();
      }
    }
  }
  for (std::thread& t : threads) t.join();
  if (interrupted) throw Interrupted();
  if (pool.error) std::rethrow_exception(pool.error);
  if (report) report();
}

}  // namespace pgsafe
