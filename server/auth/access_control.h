// AccessControl: who is calling trainerd's API (gRPC or HTTP), and what they may do.
//
// Authentication: every call carries `Bearer TOKEN` (gRPC's authorization metadata, the
// HTTP Authorization header: CallOrigin); the token's SHA-256 must belong to an active
// user (UserStore). With --tls-client-ca the caller must also have presented a
// certificate that CA signed (workers, which hold no certificate, use WorkerService and
// its per-attempt secret instead).
//
// A token found valid is remembered for kTokenCacheTtl: a check then costs a hash and a
// map lookup instead of a SQLite query, and a revoked token stops working within that
// time.
//
// Authorization: a user reads and changes only the jobs their account owns (by id: a
// name revoked and added again is another account); admins every job.
// With `share_read`, every user reads every job (changes stay the owner's).
#ifndef TRAINERD_SERVER_ACCESS_CONTROL_H_
#define TRAINERD_SERVER_ACCESS_CONTROL_H_

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/auth/call_origin.h"
#include "storage/user_store.h"
#include "trainer/v1/job_service.pb.h"

namespace trainerd {

struct Caller {
  std::string user;
  int64_t user_id = 0;  // the account (UserRecord::id): what jobs belong to
  bool admin = false;
  int64_t quota_bytes = 0;  // for uploaded files; 0: trainerd's --user-quota
};

struct AccessOptions {
  bool require_client_certificate = false;
  bool share_read = false;
};

class AccessControl {
 public:
  static constexpr std::chrono::milliseconds kTokenCacheTtl{1000};

  // `users` outlives this object.
  AccessControl(UserStore* users, AccessOptions options) : users_(users), options_(options) {}

  // The caller `origin` names, or UNAUTHENTICATED saying what is missing (never echoing
  // the token): AuthenticateRequest over its credentials.
  absl::StatusOr<Caller> Authenticate(const CallOrigin& origin) const {
    return AuthenticateRequest(origin.authorization, origin.peer_certificate_verified);
  }
  // `authorization` is the request's "Bearer TOKEN" value (nullopt: none sent);
  // `peer_certificate_verified`, whether the client presented a certificate the
  // --tls-client-ca signed.
  absl::StatusOr<Caller> AuthenticateRequest(std::optional<std::string_view> authorization,
                                             bool peer_certificate_verified) const;
  // OK when `caller` may read `job`; PERMISSION_DENIED otherwise.
  absl::Status CheckRead(const Caller& caller, const trainer::v1::Job& job) const;
  // OK when `caller` may cancel, resume or delete `job`; PERMISSION_DENIED otherwise.
  absl::Status CheckChange(const Caller& caller, const trainer::v1::Job& job) const;
  // The same rules for anything else an account owns (a sweep): `what` names it in the
  // refusal ("sweep s0123..."); `owner_id` 0 (stored before accounts): admins only.
  absl::Status CheckReadOwned(const Caller& caller, const std::string& what, int64_t owner_id) const;
  absl::Status CheckChangeOwned(const Caller& caller, const std::string& what, int64_t owner_id) const;
  // OK for admins; PERMISSION_DENIED otherwise.
  absl::Status CheckAdmin(const Caller& caller) const;
  // The account ListJobs must keep to for `caller` (0 = anybody's): their own unless
  // they may read every job and did not ask for `mine`.
  int64_t ListOwner(const Caller& caller, bool mine) const;

 private:
  struct CachedCaller {
    Caller caller;
    std::chrono::steady_clock::time_point checked;
  };

  UserStore* users_;
  AccessOptions options_;
  mutable absl::Mutex mu_;
  // By token SHA-256; cleared when it grows past a bound (a flood of distinct valid
  // tokens cannot exist: they are all in the database).
  mutable std::unordered_map<std::string, CachedCaller> cache_ ABSL_GUARDED_BY(mu_);
};

}  // namespace trainerd

#endif  // TRAINERD_SERVER_ACCESS_CONTROL_H_
