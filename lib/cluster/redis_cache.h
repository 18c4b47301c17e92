// redis_cache: the Redis backend of lilcache::Cache (Options::backend =
// "redis-cluster://..." or "redis://..."): every operation of the Cache API
// on a Redis Cluster (or one server) through the routing layer (client.h).
// docs/cluster.md says, op by op, what is identical to the local engine, what
// differs, and what is refused.
//
// Layout on the servers (docs/cluster.md, "Keys and values"; format 1):
//   lc:NAME:meta        the cache exists (created by open())
//   lc:NAME:purge       the last purge epoch (INCR by purge())
//   lc:NAME:e:{T}       the purge epoch of hash slot s, T a tag of slot s
//                       (so it shares the slot of every key of slot s)
//   lc:NAME:k:KEY       a key's value: a 34-byte header ('L', the kind as a
//                       digit, the epoch it was written in and its version,
//                       16 lower-case hex digits each) then the value
//   lc:NAME:l:KEY       get_or_set's lease on KEY
// A value is visible while its epoch is not below its slot's epoch: purge()
// raises every slot's epoch (before it returns), which hides every older
// value at once; a background sweep deletes them. Every write reads the
// slot's epoch and writes in one Lua script (atomic on the slot's master).
//
// Concurrency contract: thread-safe (the Client is; the counters are relaxed
// atomics; the sweep thread is guarded by sweep_mu_). fork(): the Client
// reconnects in the child; the child forgets the parent's sweep thread
// (ForkHook) and starts its own if it purges.
#pragma once

#include <spdlog/logger.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "cluster/client.h"
#include "engine/backend.h"
#include "engine/fork.h"
#include "util/mutex.h"

namespace lilcache::cluster {

// The backend URL `backend` (Options::backend) names: "" for the local engine
// ("local", or "" with $LILCACHE_BACKEND unset or empty), else the Redis URL
// (of `backend`, or of $LILCACHE_BACKEND when `backend` is ""). Throws Error
// (invalid_argument) on any other scheme, naming the field (and the
// variable if it came from there).
std::string ResolveBackend(std::string_view backend);

class RedisCache final : public Cache::Backend, public ForkHook {
 public:
  // Validates name and options (Error invalid_argument / unsupported naming
  // the field), opens the text log under options.root, connects, and
  // creates the cache (or checks it exists: Options::create_if_missing).
  RedisCache(std::string_view name, const Options& options, const std::string& url);
  ~RedisCache() override;

  // ForkHook: the prepare handler holds sha_mu_ and sweep_mu_ across the
  // fork, so that the child's copies of what they guard are whole; the
  // parent releases them, the child starts them afresh. (Taken in one
  // handler, released in another: out of the analysis' sight, fork.h.)
  void BeforeFork() override NO_THREAD_SAFETY_ANALYSIS;
  void AfterForkInParent() override NO_THREAD_SAFETY_ANALYSIS;
  void AfterForkInChild() override NO_THREAD_SAFETY_ANALYSIS;

  void Set(std::string_view key, std::string_view value, std::uint64_t ttl_ms,
           std::uint8_t kind) override;
  std::optional<std::string> Get(std::string_view key) override;
  bool GetInto(std::string_view key, std::string& value, ValueKind* kind) override;
  std::optional<std::string> Pop(std::string_view key, bool want_value,
                                 std::uint8_t* kind) override;
  bool Contains(std::string_view key) override;
  void Purge() override;
  std::size_t Size() override;
  void ForEach(std::string_view prefix,
               const std::function<bool(std::string_view, std::string_view)>& fn,
               bool verify) override;
  Stats GetStats() override;
  bool Add(std::string_view key, std::string_view value, std::uint64_t ttl_ms,
           std::uint8_t kind) override;
  std::int64_t Increment(std::string_view key, std::int64_t delta, std::int64_t initial,
                         std::uint64_t ttl_ms) override;
  std::optional<Versioned> GetVersioned(std::string_view key) override;
  bool CompareAndSet(std::string_view key, std::uint64_t version, std::string_view value,
                     std::uint64_t ttl_ms, std::uint8_t kind) override;
  bool CompareAndErase(std::string_view key, std::uint64_t version) override;
  bool Touch(std::string_view key, std::uint64_t ttl_ms) override;
  bool Persist(std::string_view key) override;
  std::optional<std::chrono::milliseconds> Ttl(std::string_view key) override;
  TypedValue GetOrSet(std::string_view key, const std::function<TypedValue()>& compute,
                      std::uint64_t ttl_ms) override;
  std::vector<std::optional<std::string>> GetMany(const std::vector<std::string>& keys) override;
  void SetMany(const std::vector<std::pair<std::string, std::string>>& items,
               std::uint64_t ttl_ms) override;
  std::size_t EraseMany(const std::vector<std::string>& keys) override;
  CompactionResult CompactNow() override;
  void Sync() override;

  const std::string& name() const override { return name_; }
  const std::string& root() const override { return root_; }
  Env* env() const override { return env_; }

  // How long a get_or_set() lease lives without renewal: a waiter takes over
  // at most this long after the computing process died. The holder renews it
  // every third of it while compute() runs.
  static constexpr std::uint64_t kLeaseMs = 3000;

  // A Lua script of redis_cache.cc: its text and its index in shas_.
  struct Script {
    int id;
    const char* text;
  };

 private:
  // A value as stored: its header checked (Error corrupt otherwise).
  struct Stored {
    std::uint8_t kind = 0;
    std::string_view epoch;  // 16 hex digits
    std::uint64_t version = 0;
    std::string_view value;
  };
  Stored Parse(std::string_view key, std::string_view stored) const;
  // Whether stored (a reply of GET: nil or a value) is live given the slot's
  // epoch reply (nil or 16 hex digits).
  bool Live(const Reply& epoch, const Reply& stored) const;

  std::string DataKey(std::string_view key) const;
  std::string EpochKey(std::uint16_t slot) const;
  std::string LeaseKey(std::string_view key) const;
  std::string PxOf(std::uint64_t ttl_ms) const;  // "0" = no expiry
  std::string NewVersion() const;                // 16 hex digits, random

  // Runs script with KEYS = keys on the master of `slot` (EVALSHA, falling
  // back to EVAL when the node does not have it).
  // resend: Client::Resend::kNever for the scripts that must not run twice
  // (pop, erase): see Client::Run.
  Reply Eval(const Script& s, std::uint16_t slot, const Command& keys_and_args, std::size_t nkeys,
             Client::Resend resend = Client::Resend::kSafe);
  std::vector<Reply> EvalMany(const Script& s,
                              const std::vector<std::pair<std::uint16_t, Command>>& calls,
                              std::size_t nkeys, Client::Resend resend = Client::Resend::kSafe);
  // The script's SHA1, asked of the master of `slot` (the one about to run
  // it) with SCRIPT LOAD the first time.
  std::string Sha(const Script& s, std::uint16_t slot);
  // Throws the Error a reply that is an error stands for (OOM: no_space,
  // NOPERM/NOAUTH: permission, WRONGTYPE: corrupt, else io), naming `op`.
  void Check(const Reply& r, const char* op) const;
  std::optional<Versioned> Read(std::string_view key, bool count);
  // set() and add(): script s (ARGV: kind, a new version, value, px) on the
  // key's slot; counts a set when it answers 1.
  Reply Write(const Script& s, const char* op, std::string_view key, std::string_view value,
              std::uint64_t ttl_ms, std::uint8_t kind);
  bool CasCommit(std::string_view key, std::string_view expected, bool erase, std::uint8_t kind,
                 std::string_view value, const std::string& px);
  void StartSweep() EXCLUDES(sweep_mu_);
  void SweepLoop(std::uint64_t epoch);

  std::string name_;
  std::string root_;
  Env* env_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<Client> client_;
  std::string prefix_;  // "lc:NAME:"
  std::uint64_t default_ttl_ms_ = 0;
  std::uint64_t get_or_set_timeout_ms_ = 30'000;
  std::function<void()> get_or_set_wait_hook_;

  Mutex sha_mu_;
  std::string shas_[9] GUARDED_BY(sha_mu_);  // per Script::id, "" = not loaded yet

  // Counters of this handle (Stats); relaxed: statistics only.
  std::atomic<std::uint64_t> hits_{0}, misses_{0}, sets_{0}, deletes_{0};

  // The background sweep after a purge (deletes the values it hid).
  Mutex sweep_mu_;
  CondVar sweep_cv_{&sweep_mu_};
  bool sweep_stop_ GUARDED_BY(sweep_mu_) = false;
  std::uint64_t sweep_epoch_ GUARDED_BY(sweep_mu_) = 0;  // the newest purge to sweep after
  std::thread sweeper_;

  ForkRegistration fork_registration_{this};  // last
};

}  // namespace lilcache::cluster
