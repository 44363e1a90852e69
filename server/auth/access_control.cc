#include "server/auth/access_control.h"

#include "absl/strings/str_cat.h"
#include "common/token_file.h"
#include "server/auth/access_token.h"

namespace trainerd {

absl::StatusOr<Caller> AccessControl::AuthenticateRequest(std::optional<std::string_view> authorization,
                                                          bool peer_certificate_verified) const {
  if (options_.require_client_certificate && !peer_certificate_verified) {
    return absl::UnauthenticatedError("this trainerd requires a client certificate signed by its --tls-client-ca");
  }
  if (!authorization) {
    return absl::UnauthenticatedError(
        "no access token: pass --token, set TRAINER_TOKEN or write it to ~/.config/trainerd/token");
  }
  const std::string_view value = *authorization;
  constexpr std::string_view kBearer = "Bearer ";
  if (value.substr(0, kBearer.size()) != kBearer || value.size() == kBearer.size() ||
      value.size() > kBearer.size() + kMaxTokenBytes) {
    return absl::UnauthenticatedError("authorization: expected \"Bearer TOKEN\"");
  }
  const std::string hash = TokenSha256(value.substr(kBearer.size()));
  const auto now = std::chrono::steady_clock::now();
  {
    absl::MutexLock lock(&mu_);
    auto it = cache_.find(hash);
    if (it != cache_.end() && now - it->second.checked < kTokenCacheTtl) return it->second.caller;
  }
  absl::StatusOr<UserRecord> user = users_->FindByTokenHash(hash);
  if (absl::IsNotFound(user.status())) return absl::UnauthenticatedError("the access token is not valid (or was revoked)");
  if (!user.ok()) return user.status();
  Caller caller{user->name, user->id, user->admin, user->quota_bytes};
  absl::MutexLock lock(&mu_);
  if (cache_.size() > 10000) cache_.clear();
  cache_[hash] = CachedCaller{caller, now};
  return caller;
}

absl::Status AccessControl::CheckRead(const Caller& caller, const trainer::v1::Job& job) const {
  return CheckReadOwned(caller, absl::StrCat("job ", job.id()), job.owner_id());
}

absl::Status AccessControl::CheckChange(const Caller& caller, const trainer::v1::Job& job) const {
  return CheckChangeOwned(caller, absl::StrCat("job ", job.id()), job.owner_id());
}

absl::Status AccessControl::CheckReadOwned(const Caller& caller, const std::string& what, int64_t owner_id) const {
  if (options_.share_read) return absl::OkStatus();
  return CheckChangeOwned(caller, what, owner_id);
}

absl::Status AccessControl::CheckChangeOwned(const Caller& caller, const std::string& what, int64_t owner_id) const {
  if (caller.admin || (owner_id != 0 && owner_id == caller.user_id)) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat(what, " belongs to another user; ", caller.user, " may act only on their own"));
}

absl::Status AccessControl::CheckAdmin(const Caller& caller) const {
  if (caller.admin) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(caller.user, " is not an admin"));
}

int64_t AccessControl::ListOwner(const Caller& caller, bool mine) const {
  if (mine || !(caller.admin || options_.share_read)) return caller.user_id;
  return 0;
}

}  // namespace trainerd
