#include "proto/spec/spec_policy.h"

#include <cstdlib>
#include <filesystem>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace trainerd {
namespace {

namespace fs = std::filesystem;

// The longest path component Linux accepts; longer ones are refused before any lookup.
constexpr size_t kMaxPathComponent = 255;

// The folders that exist, resolved.
std::vector<fs::path> Resolve(const std::vector<std::string>& dirs) {
  std::vector<fs::path> out;
  for (const std::string& d : dirs) {
    std::error_code ec;
    fs::path real = fs::canonical(d, ec);
    if (!ec) out.push_back(real);
  }
  return out;
}

// Where a path may resolve to: under one of `roots` but not under `excluded`, or under
// one of `exceptions` (folders inside `excluded` that stay allowed).
struct Roots {
  std::vector<fs::path> roots, exceptions;
  std::optional<fs::path> excluded;
  std::string what;  // names the roots in the message

  bool Allow(const fs::path& real) const {
    for (const fs::path& e : exceptions) {
      if (IsWithin(real, e)) return true;
    }
    if (excluded && IsWithin(real, *excluded)) return false;
    for (const fs::path& root : roots) {
      if (IsWithin(real, root)) return true;
    }
    return false;
  }
};

// Checks that `path` resolves to a place `roots` allows.
void CheckPath(const std::string& field, const std::string& path, const Roots& roots,
               std::vector<std::string>* problems) {
  if (path.empty()) return;
  const fs::path p(path);
  if (!p.is_absolute()) {
    problems->push_back(absl::StrCat(field, ": must be an absolute path"));
    return;
  }
  for (const auto& part : p) {
    if (part.native().size() > kMaxPathComponent) {
      problems->push_back(absl::StrCat(field, ": a path component is longer than ", kMaxPathComponent, " bytes"));
      return;
    }
  }
  std::error_code ec;
  // weakly_canonical follows the symlinks of the part that exists, so a link inside an
  // allowed folder that points out of it is caught, and the answer is the same whether
  // or not the rest of the path exists.
  const fs::path real = fs::weakly_canonical(p, ec);
  if (ec || !roots.Allow(real)) problems->push_back(absl::StrCat(field, ": is not under ", roots.what));
}

}  // namespace

bool IsWithin(const fs::path& resolved, const fs::path& root) {
  auto p = resolved.begin();
  for (auto r = root.begin(); r != root.end(); ++r, ++p) {
    if (p == resolved.end() || *p != *r) return false;
  }
  return true;
}

bool IsPlainName(const std::string& name) {
  if (name.empty() || name.size() > kMaxNameBytes || name == "." || name == "..") return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::map<std::string, std::string> SpecPolicyToEnvironment(const SpecPolicy& policy) {
  std::map<std::string, std::string> env;
  if (policy.confined()) env[kEnvDataDirs] = absl::StrJoin(policy.data_dirs, ":");
  if (!policy.registry_dir.empty()) env[kEnvRegistryDir] = policy.registry_dir;
  if (!policy.private_dir.empty()) env[kEnvPrivateDir] = policy.private_dir;
  if (policy.limits.max_job_memory_bytes > 0) env[kEnvMaxJobMemory] = std::to_string(policy.limits.max_job_memory_bytes);
  if (policy.limits.max_threads > 0) env[kEnvMaxThreads] = std::to_string(policy.limits.max_threads);
  return env;
}

SpecPolicy SpecPolicyFromEnvironment() {
  SpecPolicy policy;
  if (const char* v = std::getenv(kEnvDataDirs); v != nullptr && *v != '\0') {
    policy.data_dirs = absl::StrSplit(v, ':', absl::SkipEmpty());
  }
  if (const char* v = std::getenv(kEnvRegistryDir)) policy.registry_dir = v;
  if (const char* v = std::getenv(kEnvPrivateDir)) policy.private_dir = v;
  if (const char* v = std::getenv(kEnvMaxJobMemory)) {
    int64_t bytes = 0;
    if (absl::SimpleAtoi(v, &bytes)) policy.limits.max_job_memory_bytes = bytes;
  }
  if (const char* v = std::getenv(kEnvMaxThreads)) {
    int32_t threads = 0;
    if (absl::SimpleAtoi(v, &threads)) policy.limits.max_threads = threads;
  }
  return policy;
}

void FindPathProblems(const trainer::v1::JobSpec& spec, const SpecPolicy& policy,
                      std::vector<std::string>* problems) {
  const auto& a = spec.training_args();
  if (!a.hub_model_id().empty() && !IsPlainName(a.hub_model_id())) {
    problems->push_back(absl::StrCat("training_args.hub_model_id: must be a plain name (at most ", kMaxNameBytes,
                                     " letters, digits, '.', '_' or '-')"));
  }
  if (!policy.confined()) return;
  Roots read;
  read.roots = Resolve(policy.data_dirs);
  std::vector<std::string> exceptions;
  if (!a.output_dir().empty()) exceptions.push_back(a.output_dir());
  if (!policy.registry_dir.empty()) exceptions.push_back(policy.registry_dir);
  read.exceptions = Resolve(exceptions);
  if (!policy.private_dir.empty()) {
    std::error_code ec;
    read.excluded = fs::weakly_canonical(policy.private_dir, ec);
  }
  read.what = "a folder this trainerd allows (trainerd --data-dir), the registry or the job's output_dir";
  const auto& d = spec.data();
  for (const auto& [name, source] : {std::pair{"train", &d.train()}, {"eval", &d.eval()}, {"test", &d.test()}}) {
    CheckPath(absl::StrCat("data.", name, ".path"), source->path(), read, problems);
    CheckPath(absl::StrCat("data.", name, ".labels_path"), source->labels_path(), read, problems);
  }
  CheckPath("data.tokenizer.path", d.tokenizer().path(), read, problems);
  CheckPath("model.path", spec.model().path(), read, problems);
  const std::string& resume = a.resume_from_checkpoint();
  if (resume != "true" && resume != "false") {
    CheckPath("training_args.resume_from_checkpoint", resume, read, problems);
  }
  if (!a.hub_dir().empty()) {
    Roots registry;
    if (!policy.registry_dir.empty()) registry.roots = Resolve({policy.registry_dir});
    registry.what = "the registry folder (trainerd --registry-dir)";
    CheckPath("training_args.hub_dir", a.hub_dir(), registry, problems);
  }
}

}  // namespace trainerd
