// What the operator allows a job: the folders its files may come from and go to, and
// how large it may grow. trainerd validates every submission against its policy and
// hands the same policy to the worker in its environment, so that the worker checks
// again when it starts (a file swapped after submission is refused too) and both
// accept exactly the same specs.
//
// Confinement: every path a spec names is resolved (symlinks followed, `..` removed)
// and must lie under an allowed folder: data, labels, model, tokenizer and
// resume_from_checkpoint under a data folder (but not in trainerd's own data root), the
// registry or the job's own output_dir; hub_dir under the registry folder. A refused path gets the same answer whether or not it exists.
#ifndef TRAINERD_SPEC_SPEC_POLICY_H_
#define TRAINERD_SPEC_SPEC_POLICY_H_

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "spec/spec_bounds.h"
#include "protocol/worker_environment.h"
#include "trainer/v1/job_spec.pb.h"

namespace trainerd {

// The environment variables that carry a policy from trainerd to its workers.

inline constexpr size_t kMaxNameBytes = 256;  // job names and hub_model_id

struct SpecPolicy {
  // Folders a job may read from. Empty: paths are not confined (a worker run by hand).
  std::vector<std::string> data_dirs;
  std::string registry_dir;  // where hub_dir may point (and models be read); "" refuses hub_dir when confined
  // trainerd's own state and credentials: its data root (other jobs' folders, tokens,
  // the database), the daemon account's ~/.config/trainerd, its TLS key and admin token
  // files. Nothing in them is readable except the job's own output_dir and the
  // registry, even when a data folder (e.g. a home folder) holds them.
  std::vector<std::string> private_paths;
  // The storage areas the job's spec names (spec/user_files.h: DATA_ROOT/users/NAME/files),
  // their owners checked at submission: readable although under the data root.
  std::vector<std::string> user_file_dirs;
  SpecLimits limits;

  bool confined() const { return !data_dirs.empty(); }
};

// The policy as environment variables for a worker, and back.
std::map<std::string, std::string> SpecPolicyToEnvironment(const SpecPolicy& policy);
SpecPolicy SpecPolicyFromEnvironment();

// Appends "field: why" for every path of `spec` the policy refuses; nothing when it is
// not confined. Never says whether a refused path exists.
void FindPathProblems(const trainer::v1::JobSpec& spec, const SpecPolicy& policy,
                      std::vector<std::string>* problems);

// The places a job may read from: the data folders (without trainerd's private data
// root), the job's output_dir and the registry; resolved when constructed. Used at
// validation and again by the worker when it opens each file.
class ReadRoots {
 public:
  ReadRoots(const std::string& output_dir, const SpecPolicy& policy);
  // Whether `resolved` (already canonical) is an allowed place; true when not confined.
  bool Allows(const std::filesystem::path& resolved) const;
  // The refusal's wording, the same whether or not the path exists.
  static constexpr char kRefusal[] =
      "is not under a folder this trainerd allows (trainerd --data-dir), the registry or the job's output_dir";

 private:
  bool confined_;
  std::vector<std::filesystem::path> roots_, exceptions_, excluded_;
};

// `path` (absolute) with every symlink followed, also one whose target does not exist
// (std::filesystem::weakly_canonical stops at such a link, which would let a refused
// answer tell whether its target exists). Components that do not exist are kept as
// they are. ELOOP after 40 links.
std::filesystem::path ResolvePath(const std::filesystem::path& path, std::error_code* ec);

// Whether `resolved` (a path already resolved, e.g. by weakly_canonical) is `root` or
// lies inside it, compared component by component (so "/data2" is not inside "/data").
bool IsWithin(const std::filesystem::path& resolved, const std::filesystem::path& root);

// Whether `name` is a plain name: 1-256 bytes of letters, digits, '.', '_' and '-',
// not "." or "..". For job names and hub_model_id.
bool IsPlainName(const std::string& name);

}  // namespace trainerd

#endif  // TRAINERD_SPEC_SPEC_POLICY_H_
