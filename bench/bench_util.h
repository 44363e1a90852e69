// Helpers the benches that build specs share: a spec from YAML with defaults applied
// (and, through bench_flags.h, the command line and the median).
#ifndef TRAINERD_BENCH_BENCH_UTIL_H_
#define TRAINERD_BENCH_BENCH_UTIL_H_

#include <cstdio>
#include <cstdlib>
#include <string>

#include "bench/bench_flags.h"
#include "spec/spec_defaults.h"
#include "spec/spec_loader.h"

namespace trainerd::bench {

// Exits with the parser's message if `yaml` is not a job spec.
inline trainer::v1::JobSpec Spec(const std::string& yaml) {
  auto spec = ParseJobSpec(yaml);
  if (!spec.ok()) {
    std::fprintf(stderr, "%s\n", std::string(spec.status().message()).c_str());
    std::exit(1);
  }
  ApplyDefaults(&*spec);
  return *spec;
}

}  // namespace trainerd::bench

#endif  // TRAINERD_BENCH_BENCH_UTIL_H_
