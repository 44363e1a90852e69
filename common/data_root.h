// Where trainerd keeps its state by default, as trainerd and trainer-cli both find it
// (trainer-cli reads the admin token there on a one-person machine).
#ifndef TRAINERD_COMMON_DATA_ROOT_H_
#define TRAINERD_COMMON_DATA_ROOT_H_

#include <unistd.h>

#include <cstdlib>
#include <string>

namespace trainerd {

// $TRAINERD_DATA_ROOT, else $XDG_STATE_HOME/trainerd, else ~/.local/state/trainerd.
inline std::string DefaultDataRoot() {
  if (const char* v = std::getenv("TRAINERD_DATA_ROOT"); v != nullptr && *v != '\0') return v;
  if (const char* v = std::getenv("XDG_STATE_HOME"); v != nullptr && *v != '\0') return std::string(v) + "/trainerd";
  if (const char* v = std::getenv("HOME"); v != nullptr && *v != '\0') return std::string(v) + "/.local/state/trainerd";
  return "/tmp/trainerd-" + std::to_string(::getuid());
}

// The file trainerd writes the first admin's token to, inside the data root.
inline std::string AdminTokenPath(const std::string& data_root) { return data_root + "/admin.token"; }

}  // namespace trainerd

#endif  // TRAINERD_COMMON_DATA_ROOT_H_
