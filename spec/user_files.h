// user://NAME/PATH: how a job spec names a file of NAME's storage area on trainerd (the
// datasets and model folders users upload, server/files/user_file_store.h). trainerd
// resolves such paths when a job is submitted: a user's jobs read only that user's area
// (admins: anyone's), and the area is readable to the job although it lies under
// trainerd's private data root. This file is the one home of the area's layout.
#ifndef TRAINERD_SPEC_USER_FILES_H_
#define TRAINERD_SPEC_USER_FILES_H_

#include <string>
#include <vector>

#include "trainer/v1/job_spec.pb.h"

namespace trainerd {

inline constexpr char kUserFileScheme[] = "user://";

// DATA_ROOT/users/USER: the user's whole area (files and uploads under way).
std::string UserAreaDir(const std::string& data_root, const std::string& user);
// DATA_ROOT/users/USER/files: the files jobs read.
std::string UserFilesDir(const std::string& data_root, const std::string& user);

// Rewrites every user:// path of `spec` (the data, model, tokenizer and resume paths) to
// where the file lives under `data_root`. Appends "field: why" to `problems` for another
// user's file when `submitter` is not an admin, and for a path that is not user://NAME/PATH.
void ResolveUserFilePaths(trainer::v1::JobSpec* spec, const std::string& data_root, const std::string& submitter,
                          bool admin, std::vector<std::string>* problems);

// The files folders (UserFilesDir) that the resolved `spec`'s paths lie in: what the job
// may read under the data root.
std::vector<std::string> UserFileDirsOf(const trainer::v1::JobSpec& spec, const std::string& data_root);

}  // namespace trainerd

#endif  // TRAINERD_SPEC_USER_FILES_H_
