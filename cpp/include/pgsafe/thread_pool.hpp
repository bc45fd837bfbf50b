// What the worker threads of a parallel run (backup, restore) share, and the calling thread's
// watch over them: a queue of work they take under `mutex`, the first error, the connections
// that may be mid-statement (so the calling thread can cancel them), progress.
#pragma once

#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace pgsafe {

class Connection;

struct WorkerPool {
  std::mutex mutex;
  std::condition_variable changed;
  bool abort = false;
  std::exception_ptr error;
  std::vector<Connection*> running;
  int finished = 0;  // threads that have left
  int done = 0;      // units of work done (a change makes supervise() report progress)

  // Records the first error and stops every worker.
  void fail(std::exception_ptr e);
  // A worker starts / stops using `c` (nullptr: it never connected).
  void enter(Connection* c);
  void leave(Connection* c);
};

// Runs `threads` on the calling thread's behalf until each has left the pool: watches for
// interrupts (only this thread may run Python's signal handlers), calls `report` when work was
// done, cancels every running statement once one worker fails. Joins the threads, then throws
// Interrupted, or the first error; else reports a last time. `what` names the run in the log.
void supervise(WorkerPool& pool, std::vector<std::thread>& threads,
               const std::function<void()>& report, const char* what);

}  // namespace pgsafe
