// The command line every bench shares: integer flags "--name value" with defaults,
// --help, and the median of repeated measurements. No LibTorch and no trainerd
// libraries, so every bench can include it.
#ifndef TRAINERD_BENCH_BENCH_FLAGS_H_
#define TRAINERD_BENCH_BENCH_FLAGS_H_

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

namespace trainerd::bench {

// Parses argv against `defaults` (flag name with its dashes -> default value).
// --help prints `usage` and the defaults and exits 0; an unknown flag, a flag without a
// value or a value that is not a positive integer prints the error and usage and exits 2,
// so a typo never runs the full-length bench silently.
class Flags {
 public:
  Flags(int argc, char** argv, std::string usage, std::map<std::string, long long> defaults)
      : usage_(std::move(usage)), values_(std::move(defaults)) {
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      if (arg == "--help" || arg == "-h") Usage(stdout, 0);
      auto it = values_.find(arg);
      if (it == values_.end()) Fail("unknown argument " + arg);
      if (i + 1 >= argc) Fail(arg + " needs a value");
      char* end = nullptr;
      const long long v = std::strtoll(argv[++i], &end, 10);
      if (*argv[i] == '\0' || *end != '\0' || v <= 0) Fail(arg + " needs a positive integer");
      it->second = v;
    }
  }

  // The value of `name` ("--rounds"), which must be one of the defaults' names.
  long long operator[](const std::string& name) const { return values_.at(name); }
  int Int(const std::string& name) const { return static_cast<int>(values_.at(name)); }

 private:
  [[noreturn]] void Fail(const std::string& message) const {
    std::fprintf(stderr, "%s\n", message.c_str());
    Usage(stderr, 2);
  }
  [[noreturn]] void Usage(FILE* out, int code) const {
    std::fprintf(out, "usage: %s\ndefaults:", usage_.c_str());
    for (const auto& [name, value] : values_) std::fprintf(out, " %s %lld", name.c_str(), value);
    std::fprintf(out, "\n");
    std::exit(code);
  }

  std::string usage_;
  std::map<std::string, long long> values_;
};

// The median of `v` (the upper one for an even count); 0 for none.
inline double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace trainerd::bench

#endif  // TRAINERD_BENCH_BENCH_FLAGS_H_
