#include "spec/user_files.h"

#include <functional>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "spec/spec_policy.h"

namespace trainerd {
namespace {

// Calls fn(field, path) for every field of `spec` that names something to read.
void ForEachReadPath(trainer::v1::JobSpec* spec, const std::function<void(const std::string&, std::string*)>& fn) {
  auto* d = spec->mutable_data();
  for (const auto& [name, source] :
       {std::pair{"train", d->mutable_train()}, {"eval", d->mutable_eval()}, {"test", d->mutable_test()}}) {
    fn(absl::StrCat("data.", name, ".path"), source->mutable_path());
    fn(absl::StrCat("data.", name, ".labels_path"), source->mutable_labels_path());
  }
  fn("data.tokenizer.path", d->mutable_tokenizer()->mutable_path());
  fn("model.path", spec->mutable_model()->mutable_path());
  fn("model.name_or_path", spec->mutable_model()->mutable_name_or_path());
  fn("model.adapter_name_or_path", spec->mutable_model()->mutable_adapter_name_or_path());
  fn("training_args.resume_from_checkpoint", spec->mutable_training_args()->mutable_resume_from_checkpoint());
}

}  // namespace

std::string UserAreaDir(const std::string& data_root, const std::string& user) {
  return absl::StrCat(data_root, "/users/", user);
}

std::string UserFilesDir(const std::string& data_root, const std::string& user) {
  return UserAreaDir(data_root, user) + "/files";
}

void ResolveUserFilePaths(trainer::v1::JobSpec* spec, const std::string& data_root, const std::string& submitter,
                          bool admin, std::vector<std::string>* problems) {
  ForEachReadPath(spec, [&](const std::string& field, std::string* path) {
    if (!absl::StartsWith(*path, kUserFileScheme)) return;
    const std::string rest = path->substr(std::string(kUserFileScheme).size());
    const size_t slash = rest.find('/');
    const std::string user = rest.substr(0, slash);
    const std::string name = slash == std::string::npos ? "" : rest.substr(slash + 1);
    if (!IsPlainName(user) || name.empty() || absl::StrContains(name, "..") || absl::StartsWith(name, "/")) {
      problems->push_back(absl::StrCat(field, ": a user:// path is user://USER/NAME, NAME a file or folder of USER's "
                                              "area (trainer-cli files lists yours)"));
      return;
    }
    if (user != submitter && !admin) {
      problems->push_back(absl::StrCat(field, ": user://", user, "/... is ", user,
                                       "'s; a job reads only its owner's uploaded files"));
      return;
    }
    *path = absl::StrCat(UserFilesDir(data_root, user), "/", name);
  });
}

std::vector<std::string> UserFileDirsOf(const trainer::v1::JobSpec& spec, const std::string& data_root) {
  trainer::v1::JobSpec copy = spec;  // ForEachReadPath lists the fields once, mutably
  const std::string users = data_root + "/users/";
  std::set<std::string> dirs;
  ForEachReadPath(&copy, [&](const std::string&, std::string* path) {
    if (!absl::StartsWith(*path, users)) return;
    const std::string user = path->substr(users.size(), path->find('/', users.size()) - users.size());
    if (IsPlainName(user) && absl::StartsWith(*path, UserFilesDir(data_root, user) + "/")) {
      dirs.insert(UserFilesDir(data_root, user));
    }
  });
  return std::vector<std::string>(dirs.begin(), dirs.end());
}

}  // namespace trainerd
