// The slots of one machine that ranks can run on.
#ifndef TRAINERD_SERVER_LAUNCH_NODE_SLOTS_H_
#define TRAINERD_SERVER_LAUNCH_NODE_SLOTS_H_

#include <cstdint>
#include <string>

namespace trainerd {

// "" is trainerd's own machine (LocalLauncher); "slurm" is a Slurm partition
// (SlurmLauncher), whose own scheduler places the ranks on its nodes.
struct NodeSlots {
  std::string node;
  int32_t cpu_slots = 0;
  int32_t gpus = 0;
};

}  // namespace trainerd

#endif  // TRAINERD_SERVER_LAUNCH_NODE_SLOTS_H_
