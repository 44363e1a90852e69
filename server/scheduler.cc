#include "server/scheduler.h"

#include <algorithm>

namespace trainerd {

std::vector<std::string> PickJobsToStart(std::vector<QueuedJob> queue, FreeSlots free) {
  std::sort(queue.begin(), queue.end(), [](const QueuedJob& a, const QueuedJob& b) {
    if (a.priority != b.priority) return a.priority > b.priority;
    if (a.submitted_ms != b.submitted_ms) return a.submitted_ms < b.submitted_ms;
    return a.id < b.id;
  });
  std::vector<std::string> start;
  for (const QueuedJob& job : queue) {
    if (job.cpu_slots > free.cpu_slots || job.gpus > free.gpus) break;  // reserve for the head
    free.cpu_slots -= job.cpu_slots;
    free.gpus -= job.gpus;
    start.push_back(job.id);
  }
  return start;
}

}  // namespace trainerd
