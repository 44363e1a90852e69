#include "server/api/follow_pump.h"

#include <chrono>
#include <vector>

namespace trainerd {

FollowPump::FollowPump(JobRegistry* registry) : registry_(registry), thread_([this] { Loop(); }) {}

FollowPump::~FollowPump() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

bool FollowPump::Add(std::shared_ptr<Pokeable> follower) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return false;
  followers_.insert(std::move(follower));
  return true;
}

void FollowPump::Remove(const std::shared_ptr<Pokeable>& follower) {
  absl::MutexLock lock(&mu_);
  followers_.erase(follower);
}

size_t FollowPump::size() {
  absl::MutexLock lock(&mu_);
  return followers_.size();
}

void FollowPump::Stop() {
  std::set<std::shared_ptr<Pokeable>> followers;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    followers.swap(followers_);
  }
  for (const auto& f : followers) f->Stop();
}

void FollowPump::Loop() {
  uint64_t seen = registry_->change_counter();
  while (true) {
    const uint64_t now = registry_->WaitForChange(seen, std::chrono::milliseconds(500));
    std::vector<std::shared_ptr<Pokeable>> followers;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      followers.assign(followers_.begin(), followers_.end());
    }
    for (const auto& f : followers) f->Poke();
    // Once the registry stops waiting (shutdown) every wait returns at once: rest a little.
    if (now == seen) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    seen = now;
  }
}

}  // namespace trainerd
