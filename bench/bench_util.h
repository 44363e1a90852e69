// Helpers the benches share: a spec from YAML with defaults applied, integer flags, and
// the median of repeated measurements.
#ifndef TRAINERD_BENCH_BENCH_UTIL_H_
#define TRAINERD_BENCH_BENCH_UTIL_H_

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

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

// The value after `name` on the command line ("--rounds 3"), or `fallback`.
inline int IntFlag(int argc, char** argv, const std::string& name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == name) return std::atoi(argv[i + 1]);
  }
  return fallback;
}

inline double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace trainerd::bench

#endif  // TRAINERD_BENCH_BENCH_UTIL_H_
