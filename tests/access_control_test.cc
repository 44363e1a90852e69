// AccessControl's checks of a request, without a transport: what the gRPC services (and
// the HTTP API after them) authenticate with, over a real SQLite user store.
#include "server/auth/access_control.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "server/auth/access_token.h"
#include "tests/test_util.h"

namespace trainerd {
namespace {

using ::testing::HasSubstr;

TEST(AccessControl, ABearerTokenOfAnActiveUserIsTheCaller) {
  testing::TempDir dir;
  auto users = UserStore::Open(dir / "trainerd.db");
  ASSERT_TRUE(users.ok()) << users.status();
  ASSERT_TRUE((*users)->AddUser("alice", /*admin=*/false, TokenSha256("trd_alice")).ok());
  AccessControl access(users->get(), AccessOptions{});
  auto caller = access.AuthenticateRequest("Bearer trd_alice", false);
  ASSERT_TRUE(caller.ok()) << caller.status();
  EXPECT_EQ(caller->user, "alice");
  EXPECT_FALSE(caller->admin);
  for (const auto& [header, why] : std::vector<std::pair<std::optional<std::string_view>, std::string>>{
           {std::nullopt, "no access token"},
           {"Basic trd_alice", "expected \"Bearer TOKEN\""},
           {"Bearer ", "expected \"Bearer TOKEN\""},
           {"Bearer trd_mallory", "not valid"}}) {
    auto refused = access.AuthenticateRequest(header, false);
    ASSERT_EQ(refused.status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_THAT(std::string(refused.status().message()), HasSubstr(why));
    EXPECT_THAT(std::string(refused.status().message()), ::testing::Not(HasSubstr("trd_")));
  }
  AccessOptions mutual;
  mutual.require_client_certificate = true;
  AccessControl strict(users->get(), mutual);
  EXPECT_EQ(strict.AuthenticateRequest("Bearer trd_alice", false).status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(strict.AuthenticateRequest("Bearer trd_alice", true).ok());
}

}  // namespace
}  // namespace trainerd
