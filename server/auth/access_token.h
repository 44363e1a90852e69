// Access tokens: how they are made and how they are stored (their SHA-256).
#ifndef TRAINERD_SERVER_ACCESS_TOKEN_H_
#define TRAINERD_SERVER_ACCESS_TOKEN_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace trainerd {

// A new token: "trd_" and 64 hex digits (256 bits from OpenSSL's CSPRNG). The prefix
// lets secret scanners recognise a leaked token.
absl::StatusOr<std::string> NewAccessToken();

// The lowercase hex SHA-256 of `token`: the form in which tokens are stored.
std::string TokenSha256(std::string_view token);

}  // namespace trainerd

#endif  // TRAINERD_SERVER_ACCESS_TOKEN_H_
