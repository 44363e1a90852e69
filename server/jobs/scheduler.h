// Which queued jobs to start, given the free slots. Pure logic, no threads.
//
// Order: higher priority first, then earlier submission. A job's ranks start together
// or not at all (gang). The head of the queue holds a reservation: if it does not fit,
// nothing behind it starts, so a stream of small jobs cannot starve a large one.
#ifndef TRAINERD_SERVER_JOBS_SCHEDULER_H_
#define TRAINERD_SERVER_JOBS_SCHEDULER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "server/launch/node_slots.h"

namespace trainerd {

struct QueuedJob {
  std::string id;
  int32_t priority = 0;
  int64_t submitted_ms = 0;
  int32_t cpu_slots = 1;  // ranks x 1
  int32_t gpus = 0;       // ranks x gpus_per_rank
};

struct FreeSlots {
  int32_t cpu_slots = 0;
  int32_t gpus = 0;
};

// Where a queued job stands: its place in the queue (1 = next) and, unless it starts
// now, why it waits, as squeue's REASON: "Resources" for the head of the queue that does
// not fit, "Priority" for those behind it.
struct QueueSpot {
  std::string id;
  int32_t position = 0;
  std::string reason;  // "" when it starts now
};

// Every queued job's spot, in queue order.
std::vector<QueueSpot> PlanQueue(std::vector<QueuedJob> queue, FreeSlots free);

// Returns the ids of the jobs to start now, in start order.
std::vector<std::string> PickJobsToStart(std::vector<QueuedJob> queue, FreeSlots free);

// Places a gang of `ranks` ranks, each needing one CPU slot and `gpus_per_rank` GPUs on
// its machine, on as few machines as possible (the fullest-free first: collectives
// within a machine are cheapest). Returns each rank's node and takes the slots from
// `nodes`; nullopt (and `nodes` unchanged) when the gang does not fit.
std::optional<std::vector<std::string>> PlaceRanks(int32_t ranks, int32_t gpus_per_rank,
                                                   std::vector<NodeSlots>* nodes);

}  // namespace trainerd

#endif  // TRAINERD_SERVER_JOBS_SCHEDULER_H_
