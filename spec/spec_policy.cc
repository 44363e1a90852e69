#include "spec/spec_policy.h"

#include <cstdlib>
#include <deque>
#include <filesystem>
#include <functional>
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

using Allow = std::function<bool(const fs::path& resolved)>;

// Checks that `path` resolves to a place `allow` accepts (`what` says which places).
void CheckPath(const std::string& field, const std::string& path, const Allow& allow, const std::string& what,
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
  // Every link is followed, dangling ones too, so a link inside an allowed folder that
  // points out of it is caught, and the answer is the same whether or not its target
  // exists.
  const fs::path real = ResolvePath(p, &ec);
  if (ec || !allow(real)) problems->push_back(absl::StrCat(field, ": ", what));
}

}  // namespace

fs::path ResolvePath(const fs::path& path, std::error_code* ec) {
  std::deque<fs::path> rest(path.begin(), path.end());
  fs::path out = "/";
  int links = 0;
  while (!rest.empty()) {
    const fs::path part = rest.front();
    rest.pop_front();
    if (part.empty() || part == "." || part == "/") continue;
    if (part == "..") {
      out = out.parent_path();  // `out` holds no links, so this is the real parent
      continue;
    }
    const fs::path next = out / part;
    std::error_code status_ec;
    if (!fs::is_symlink(fs::symlink_status(next, status_ec))) {
      out = next;
      continue;
    }
    if (++links > 40) {
      *ec = std::make_error_code(std::errc::too_many_symbolic_link_levels);
      return {};
    }
    const fs::path target = fs::read_symlink(next, *ec);
    if (*ec) return {};
    if (target.is_absolute()) out = "/";
    rest.insert(rest.begin(), target.begin(), target.end());
  }
  return out;
}

ReadRoots::ReadRoots(const std::string& output_dir, const SpecPolicy& policy) : confined_(policy.confined()) {
  if (!confined_) return;
  roots_ = Resolve(policy.data_dirs);
  std::vector<std::string> exceptions;
  if (!output_dir.empty()) exceptions.push_back(output_dir);
  if (!policy.registry_dir.empty()) exceptions.push_back(policy.registry_dir);
  for (const std::string& dir : policy.user_file_dirs) exceptions.push_back(dir);
  exceptions_ = Resolve(exceptions);
  for (const std::string& path : policy.private_paths) {
    std::error_code ec;
    const fs::path resolved = ResolvePath(fs::absolute(path, ec), &ec);
    if (!ec) excluded_.push_back(resolved);
  }
}

bool ReadRoots::Allows(const fs::path& real) const {
  if (!confined_) return true;
  for (const fs::path& e : exceptions_) {
    if (IsWithin(real, e)) return true;
  }
  for (const fs::path& excluded : excluded_) {
    if (IsWithin(real, excluded)) return false;
  }
  for (const fs::path& root : roots_) {
    if (IsWithin(real, root)) return true;
  }
  return false;
}

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
  if (!policy.private_paths.empty()) env[kEnvPrivateDir] = absl::StrJoin(policy.private_paths, ":");
  if (!policy.user_file_dirs.empty()) env[kEnvUserFileDirs] = absl::StrJoin(policy.user_file_dirs, ":");
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
  if (const char* v = std::getenv(kEnvPrivateDir)) policy.private_paths = absl::StrSplit(v, ':', absl::SkipEmpty());
  if (const char* v = std::getenv(kEnvUserFileDirs)) policy.user_file_dirs = absl::StrSplit(v, ':', absl::SkipEmpty());
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
  const ReadRoots roots(a.output_dir(), policy);
  const Allow read = [&roots](const fs::path& real) { return roots.Allows(real); };
  const std::string what = ReadRoots::kRefusal;
  const auto& d = spec.data();
  for (const auto& [name, source] : {std::pair{"train", &d.train()}, {"eval", &d.eval()}, {"test", &d.test()}}) {
    CheckPath(absl::StrCat("data.", name, ".path"), source->path(), read, what, problems);
    CheckPath(absl::StrCat("data.", name, ".labels_path"), source->labels_path(), read, what, problems);
  }
  CheckPath("data.tokenizer.path", d.tokenizer().path(), read, what, problems);
  CheckPath("model.path", spec.model().path(), read, what, problems);
  CheckPath("model.name_or_path", spec.model().name_or_path(), read, what, problems);
  CheckPath("model.adapter_name_or_path", spec.model().adapter_name_or_path(), read, what, problems);
  const std::string& resume = a.resume_from_checkpoint();
  if (resume != "true" && resume != "false") {
    CheckPath("training_args.resume_from_checkpoint", resume, read, what, problems);
  }
  if (!a.hub_dir().empty()) {
    const std::vector<fs::path> registry = policy.registry_dir.empty() ? std::vector<fs::path>()
                                                                       : Resolve({policy.registry_dir});
    const Allow in_registry = [&registry](const fs::path& real) {
      return !registry.empty() && IsWithin(real, registry.front());
    };
    CheckPath("training_args.hub_dir", a.hub_dir(), in_registry, "is not under the registry folder (trainerd --registry-dir)",
              problems);
  }
}

}  // namespace trainerd
