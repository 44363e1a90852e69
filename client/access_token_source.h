// Where trainer-cli and the client library find the caller's access token.
#ifndef TRAINERD_CLIENT_ACCESS_TOKEN_SOURCE_H_
#define TRAINERD_CLIENT_ACCESS_TOKEN_SOURCE_H_

#include <string>

#include "absl/status/statusor.h"

namespace trainerd {

// The token to call trainerd with: `explicit_token` (--token) when given, else
// $TRAINER_TOKEN, else ~/.config/trainerd/token ($XDG_CONFIG_HOME honoured), else the
// admin token in `data_root` when this user can read it (a one-person machine). ""
// when there is none (trainerd then answers UNAUTHENTICATED, saying how to pass one).
// A token file that group or others can read is refused with the reason.
absl::StatusOr<std::string> FindAccessToken(const std::string& explicit_token, const std::string& data_root);

}  // namespace trainerd

#endif  // TRAINERD_CLIENT_ACCESS_TOKEN_SOURCE_H_
