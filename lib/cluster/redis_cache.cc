#include "cluster/redis_cache.h"

#include <array>
#include <charconv>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>

#include "cluster/slot.h"
#include "engine/common_options.h"
#include "engine/counter.h"
#include "engine/operation.h"
#include "lilcache/env.h"
#include "util/duration.h"
#include "util/logging.h"
#include "util/names.h"
#include "util/quote.h"

namespace lilcache::cluster {

// ---- backend selection -----------------------------------------------------------

namespace {

bool StartsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

bool IsRedisUrl(std::string_view url) {
  return StartsWith(url, "redis://") || StartsWith(url, "redis-cluster://");
}

// A URL as shown in an error message: up to the '@' hidden.
std::string Shown(std::string_view url) {
  const std::size_t at = url.find('@');
  if (at == std::string_view::npos) return Quote(url);
  const std::size_t scheme = url.find("://");
  const std::size_t from = scheme == std::string_view::npos ? 0 : scheme + 3;
  return Quote(std::string(url.substr(0, from)) + "***" + std::string(url.substr(at)));
}

}  // namespace

std::string ResolveBackend(std::string_view backend) {
  std::string_view url = backend;
  const char* field = "backend";
  if (url.empty()) {
    const char* v = std::getenv("LILCACHE_BACKEND");
    if (v == nullptr || *v == '\0') return {};
    url = v;
    field = "$LILCACHE_BACKEND";
  }
  if (url == "local") return {};
  if (IsRedisUrl(url)) return std::string(url);
  throw Error(ErrorCode::invalid_argument,
              std::string(field) + ": invalid backend " + Shown(url) +
                  ": \"local\", \"redis-cluster://host:port[,host:port...]\" or "
                  "\"redis://host:port\"");
}

// ---- layout -------------------------------------------------------------------

namespace {

constexpr std::size_t kHeaderBytes = 34;
constexpr std::string_view kZeroEpoch = "0000000000000000";

// For each hash slot s, a short string whose slot is s: the hash tag of the
// slot's epoch key (lc:NAME:e:{tag}). Computed once (~170k CRC16s).
const std::array<std::string, kSlots>& SlotTags() {
  static const std::array<std::string, kSlots>* tags = [] {
    auto* t = new std::array<std::string, kSlots>();
    std::size_t filled = 0;
    for (std::uint64_t i = 0; filled < kSlots; ++i) {
      std::string s = std::to_string(i);
      std::string& slot = (*t)[Crc16(s) % kSlots];
      if (slot.empty()) {
        slot = std::move(s);
        ++filled;
      }
    }
    return t;
  }();
  return *tags;
}

std::string Hex16(std::uint64_t v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 15; i >= 0; --i) {
    s[static_cast<std::size_t>(i)] = kDigits[v & 15];
    v >>= 4;
  }
  return s;
}

bool ParseHex16(std::string_view s, std::uint64_t* v) {
  if (s.size() != 16) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *v, 16);
  return ec == std::errc() && p == s.data() + s.size();
}

std::string_view EpochOf(const Reply& r) {
  return r.type == Reply::Type::kString ? std::string_view(r.str) : kZeroEpoch;
}

}  // namespace

// The Lua scripts (docs/cluster.md, "Scripts"). KEYS[1] is always the
// slot's epoch key and KEYS[2] the data key: both in one slot, so each
// script runs atomically on that slot's master.
namespace {

#define LC_EPOCH "local e = redis.call('GET', KEYS[1]) or '0000000000000000'\n"
#define LC_LIVE(v) "(" v " and string.sub(" v ", 3, 18) >= e)"

// ARGV: kind digit, version, value, px ("0" = none).
constexpr const char* kSetText = LC_EPOCH
    "local v = 'L' .. ARGV[1] .. e .. ARGV[2] .. ARGV[3]\n"
    "if ARGV[4] == '0' then redis.call('SET', KEYS[2], v)\n"
    "else redis.call('SET', KEYS[2], v, 'PX', ARGV[4]) end\n"
    "return 1\n";

// As set, only if the key holds no live value. Returns 1 if it wrote (or
// had written: a value with our version is this very call, sent again by
// the client after a lost reply).
constexpr const char* kAddText = LC_EPOCH
    "local cur = redis.call('GET', KEYS[2])\n"
    "if cur and string.sub(cur, 19, 34) == ARGV[2] then return 1 end\n"
    "if " LC_LIVE("cur") " then return 0 end\n"
    "local v = 'L' .. ARGV[1] .. e .. ARGV[2] .. ARGV[3]\n"
    "if ARGV[4] == '0' then redis.call('SET', KEYS[2], v)\n"
    "else redis.call('SET', KEYS[2], v, 'PX', ARGV[4]) end\n"
    "return 1\n";

// GETDEL of a live value: returns it (ARGV[1] == '1') or its header, or nil.
// A hidden (purged) value is deleted too, and nil returned.
constexpr const char* kPopText =
    "local cur = redis.call('GET', KEYS[2])\n"
    "if not cur then return false end\n"
    "redis.call('DEL', KEYS[2])\n" LC_EPOCH
    "if string.sub(cur, 3, 18) < e then return false end\n"
    "if ARGV[1] == '1' then return cur end\n"
    "return string.sub(cur, 1, 34)\n";

// Compare and set/delete. ARGV: expected version ("" = no live value),
// op ("s" set, "d" delete), kind digit, new version, value, px ("0" none,
// "-1" keep the key's expiry). Returns 1 if it wrote (or had written: as
// add).
constexpr const char* kCasText = LC_EPOCH
    "local cur = redis.call('GET', KEYS[2])\n"
    "if ARGV[2] == 's' and cur and string.sub(cur, 19, 34) == ARGV[4] then return 1 end\n"
    "local live = " LC_LIVE("cur") "\n"
    "if ARGV[1] == '' then\n"
    "  if live then return 0 end\n"
    "elseif not live or string.sub(cur, 19, 34) ~= ARGV[1] then return 0 end\n"
    "if ARGV[2] == 'd' then redis.call('DEL', KEYS[2]) return 1 end\n"
    "local v = 'L' .. ARGV[3] .. e .. ARGV[4] .. ARGV[5]\n"
    "if ARGV[6] == '0' then redis.call('SET', KEYS[2], v)\n"
    "elseif ARGV[6] == '-1' then redis.call('SET', KEYS[2], v, 'KEEPTTL')\n"
    "else redis.call('SET', KEYS[2], v, 'PX', ARGV[6]) end\n"
    "return 1\n";

// A live value gets a new version and expiry (ARGV: version, px; "0" =
// persist, which leaves a value without expiry alone). Returns 1 if live.
constexpr const char* kTouchText = LC_EPOCH
    "local cur = redis.call('GET', KEYS[2])\n"
    "if not " LC_LIVE("cur") " then return 0 end\n"
    "if string.sub(cur, 19, 34) == ARGV[1] then return 1 end\n"
    "local v = string.sub(cur, 1, 18) .. ARGV[1] .. string.sub(cur, 35)\n"
    "if ARGV[2] == '0' then\n"
    "  if redis.call('PTTL', KEYS[2]) == -1 then return 1 end\n"
    "  redis.call('SET', KEYS[2], v)\n"
    "else redis.call('SET', KEYS[2], v, 'PX', ARGV[2]) end\n"
    "return 1\n";

// PTTL of a live value (-1: no expiry), -2 if none.
constexpr const char* kTtlText = LC_EPOCH
    "local h = redis.call('GETRANGE', KEYS[2], 0, 33)\n"
    "if h == '' or string.sub(h, 3, 18) < e then return -2 end\n"
    "return redis.call('PTTL', KEYS[2])\n";

// purge(): raises the slot's epoch to ARGV[1] (never lowers it).
constexpr const char* kRaiseText =
    "local cur = redis.call('GET', KEYS[1])\n"
    "if not cur or cur < ARGV[1] then redis.call('SET', KEYS[1], ARGV[1]) end\n"
    "return 1\n";

// The sweep: deletes a value hidden by a purge.
constexpr const char* kSweepText = LC_EPOCH
    "local h = redis.call('GETRANGE', KEYS[2], 0, 33)\n"
    "if h ~= '' and string.sub(h, 1, 1) == 'L' and string.sub(h, 3, 18) < e then\n"
    "  redis.call('DEL', KEYS[2]) return 1 end\n"
    "return 0\n";

// get_or_set leases: KEYS[1] the lease, ARGV[1] the holder's token; renew
// (ARGV[2] = ms) or release (no ARGV[2]) only one's own lease.
constexpr const char* kLeaseText =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
    "if ARGV[2] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) else redis.call('DEL', KEYS[1]) end\n"
    "return 1\n";

#undef LC_EPOCH
#undef LC_LIVE

}  // namespace

using Script = RedisCache::Script;
const Script kSet{0, kSetText};
const Script kAdd{1, kAddText};
const Script kPop{2, kPopText};
const Script kCas{3, kCasText};
const Script kTouch{4, kTouchText};
const Script kTtl{5, kTtlText};
const Script kRaise{6, kRaiseText};
const Script kSweep{7, kSweepText};
const Script kLease{8, kLeaseText};

// ---- open and close -------------------------------------------------------------

namespace {

[[noreturn]] void Refuse(const char* field, const std::string& why) {
  throw Error(ErrorCode::unsupported, std::string(field) + ": " + why);
}

}  // namespace

RedisCache::RedisCache(std::string_view name, const Options& options, const std::string& url)
    : name_(name), env_(options.env != nullptr ? options.env : Env::Default()) {
  validate_name(name);
  Config config = ParseUrl(url);
  const CommonOptions common = ParseCommonOptions(options);
  default_ttl_ms_ = common.default_ttl_ms;
  get_or_set_timeout_ms_ = common.get_or_set_timeout_ms;
  get_or_set_wait_hook_ = options.get_or_set_wait_hook;
  // What Redis does itself, refused rather than silently ignored
  // (docs/cluster.md, "Options").
  if (!options.snapshot.empty()) {
    Refuse("snapshot",
           "periodic snapshots of a Redis backend are the servers' own (save, "
           "appendonly in redis.conf); leave Options::snapshot empty");
  }
  if (!options.sync.empty()) {
    Refuse("sync",
           "the durability of a Redis backend is the servers' own (appendfsync in "
           "redis.conf); leave Options::sync empty");
  }
  if (options.max_bytes != 0) {
    Refuse("max_bytes",
           "the size limit of a Redis backend is the servers' maxmemory and "
           "maxmemory-policy (redis.conf); leave Options::max_bytes 0");
  }
  const spdlog::level::level_enum level = ParseLogLevel(options.loglevel);
  root_ = ResolveRoot(options.root);
  prefix_ = "lc:" + name_ + ":";
  const std::string display = config.display;
  client_ = std::make_unique<Client>(std::move(config), nullptr);

  const std::string meta = prefix_ + "meta";
  if (options.create_if_missing) {
    Reply r = client_->Run(KeySlot(meta), {"SET", meta, std::to_string(env_->NowMillis()), "NX"});
    Check(r, "open");
  } else {
    // Before the log: a cache that does not exist leaves no file behind.
    Reply r = client_->Run(KeySlot(meta), {"EXISTS", meta});
    Check(r, "open");
    if (r.integer == 0) {
      throw Error(ErrorCode::no_such_cache,
                  "no such cache " + Quote(name_) + " on " + display + " (no key " + meta + ")");
    }
  }
  // The text log stays on this machine, under root (created if missing: it
  // holds no cache data).
  EnsureRootDirectory(env_, root_);
  log_ = MakeCacheLogger(env_, root_ + "/" + name_ + ".log", name_, level);
  client_->set_logger(log_);
  log_->log(options.one_shot ? spdlog::level::debug : spdlog::level::info, "opened on {}", display);
}

RedisCache::~RedisCache() {
  {
    MutexLock lock(&sweep_mu_);
    sweep_stop_ = true;
    sweep_cv_.SignalAll();
  }
  if (sweeper_.joinable()) sweeper_.join();
}

void RedisCache::BeforeFork() {
  sha_mu_.Lock();
  sweep_mu_.Lock();
}

void RedisCache::AfterForkInParent() {
  sweep_mu_.Unlock();
  sha_mu_.Unlock();
}

void RedisCache::AfterForkInChild() {
  // The child's only thread (fork.h): the parent's sweep thread is not here.
  sha_mu_.ResetAfterFork();
  sweep_mu_.ResetAfterFork();
  sweep_cv_.ResetAfterFork();
  new (&sweeper_) std::thread();
  sweep_stop_ = false;
  sweep_epoch_ = 0;
}

// ---- helpers ----------------------------------------------------------------------

std::string RedisCache::DataKey(std::string_view key) const {
  std::string k;
  k.reserve(prefix_.size() + 2 + key.size());
  k.append(prefix_).append("k:").append(key);
  return k;
}

std::string RedisCache::EpochKey(std::uint16_t slot) const {
  // One allocation: every get, set and pop builds one.
  const std::string& tag = SlotTags()[slot];
  std::string k;
  k.reserve(prefix_.size() + 4 + tag.size());
  k.append(prefix_).append("e:{").append(tag).push_back('}');
  return k;
}

std::string RedisCache::LeaseKey(std::string_view key) const {
  return prefix_ + "l:" + std::string(key);
}

std::string RedisCache::PxOf(std::uint64_t ttl_ms) const {
  const std::uint64_t ms = ttl_ms != 0 ? ttl_ms : default_ttl_ms_;
  return std::to_string(ms);
}

std::string RedisCache::NewVersion() const {
  // A per-thread splitmix64 stream, seeded from the Env's random source once
  // per thread and again in a fork child (whose copy of the stream would
  // repeat its parent's): no system call per write.
  thread_local std::uint64_t state = 0;
  thread_local std::uint64_t seeded_in = ~std::uint64_t{0};
  if (seeded_in != ForkEpoch()) {
    state = env_->Random64();
    seeded_in = ForkEpoch();
  }
  std::uint64_t v = 0;
  while (v == 0) {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    v = z ^ (z >> 31);
  }
  return Hex16(v);
}

void RedisCache::Check(const Reply& r, const char* op) const {
  if (!r.is_error()) return;
  ErrorCode code = ErrorCode::io;
  if (r.is_error("OOM")) {
    code = ErrorCode::no_space;
  } else if (r.is_error("NOPERM") || r.is_error("NOAUTH") || r.is_error("WRONGPASS")) {
    code = ErrorCode::permission;
  } else if (r.is_error("WRONGTYPE")) {
    code = ErrorCode::corrupt;
  }
  throw Error(code, std::string(op) + " on " + client_->config().display + ": " + r.str);
}

RedisCache::Stored RedisCache::Parse(std::string_view key, std::string_view stored) const {
  Stored s;
  if (stored.size() < kHeaderBytes || stored[0] != 'L' || stored[1] < '0' || stored[1] > '3' ||
      !ParseHex16(stored.substr(18, 16), &s.version)) {
    throw Error(ErrorCode::corrupt, "key of " + std::to_string(key.size()) +
                                        " bytes: the value of " + DataKey(key).substr(0, 80) +
                                        " is not a lilcache value (format 1)");
  }
  s.kind = static_cast<std::uint8_t>(stored[1] - '0');
  s.epoch = stored.substr(2, 16);
  s.value = stored.substr(kHeaderBytes);
  return s;
}

bool RedisCache::Live(const Reply& epoch, const Reply& stored) const {
  if (stored.type != Reply::Type::kString) return false;
  if (stored.str.size() < kHeaderBytes) return true;  // Parse() will say it is not ours
  return std::string_view(stored.str).substr(2, 16) >= EpochOf(epoch);
}

std::string RedisCache::Sha(const Script& s, std::uint16_t slot) {
  {
    MutexLock lock(&sha_mu_);
    if (!shas_[s.id].empty()) return shas_[s.id];
  }
  // Every node computes the same SHA1; this one now has the script.
  Reply r = client_->Run(slot, {"SCRIPT", "LOAD", s.text});
  Check(r, "SCRIPT LOAD");
  MutexLock lock(&sha_mu_);
  shas_[s.id] = r.str;
  return shas_[s.id];
}

namespace {

Command EvalCommand(std::string_view verb, std::string_view script, const std::string& nkeys,
                    const Command& keys_and_args) {
  Command c;
  c.reserve(3 + keys_and_args.size());
  c.push_back(verb);
  c.push_back(script);
  c.push_back(nkeys);
  c.insert(c.end(), keys_and_args.begin(), keys_and_args.end());
  return c;
}

}  // namespace

Reply RedisCache::Eval(const Script& s, std::uint16_t slot, const Command& keys_and_args,
                       std::size_t nkeys, Client::Resend resend) {
  const std::string n = std::to_string(nkeys);
  const std::string sha = Sha(s, slot);
  Reply r = client_->Run(slot, EvalCommand("EVALSHA", sha, n, keys_and_args), resend);
  if (r.is_error("NOSCRIPT")) {
    // A node that never loaded it (a new or promoted one): EVAL loads it.
    r = client_->Run(slot, EvalCommand("EVAL", s.text, n, keys_and_args), resend);
  }
  return r;
}

std::vector<Reply> RedisCache::EvalMany(const Script& s,
                                        const std::vector<std::pair<std::uint16_t, Command>>& calls,
                                        std::size_t nkeys, Client::Resend resend) {
  const std::string n = std::to_string(nkeys);
  if (calls.empty()) return {};
  const std::string sha = Sha(s, calls.front().first);
  std::vector<std::pair<std::uint16_t, Command>> cmds;
  cmds.reserve(calls.size());
  for (const auto& [slot, c] : calls) cmds.emplace_back(slot, EvalCommand("EVALSHA", sha, n, c));
  std::vector<Reply> replies = client_->RunMany(cmds, resend);
  std::vector<std::pair<std::uint16_t, Command>> again;
  std::vector<std::size_t> where;
  for (std::size_t i = 0; i < replies.size(); ++i) {
    if (replies[i].is_error("NOSCRIPT")) {
      again.emplace_back(calls[i].first, EvalCommand("EVAL", s.text, n, calls[i].second));
      where.push_back(i);
    }
  }
  if (!again.empty()) {
    std::vector<Reply> more = client_->RunMany(again, resend);
    for (std::size_t j = 0; j < more.size(); ++j) replies[where[j]] = std::move(more[j]);
  }
  return replies;
}

// ---- reads --------------------------------------------------------------------------

std::optional<Versioned> RedisCache::Read(std::string_view key, bool count) {
  CheckKey(key);
  const std::string dk = DataKey(key);
  const std::uint16_t slot = KeySlot(dk);
  Reply r = client_->Run(slot, {"MGET", EpochKey(slot), dk});
  Check(r, "get");
  if (r.elements.size() != 2) throw Error(ErrorCode::io, "get: unexpected reply to MGET");
  if (!Live(r.elements[0], r.elements[1])) {
    if (count) misses_.fetch_add(1, std::memory_order_relaxed);
    return std::nullopt;
  }
  const Stored s = Parse(key, r.elements[1].str);
  if (count) hits_.fetch_add(1, std::memory_order_relaxed);
  // The reply's string becomes the value: the header is cut off in place
  // (a memmove), not copied into a new string.
  Versioned v{std::move(r.elements[1].str), s.version, static_cast<ValueKind>(s.kind)};
  v.value.erase(0, kHeaderBytes);
  return v;
}

std::optional<std::string> RedisCache::Get(std::string_view key) {
  std::optional<Versioned> v = Read(key, true);
  if (!v) return std::nullopt;
  return std::move(v->value);
}

bool RedisCache::GetInto(std::string_view key, std::string& value, ValueKind* kind) {
  std::optional<Versioned> v = Read(key, true);
  if (!v) return false;
  value.assign(v->value);
  if (kind != nullptr) *kind = v->kind;
  return true;
}

std::optional<Versioned> RedisCache::GetVersioned(std::string_view key) { return Read(key, true); }

std::optional<std::chrono::milliseconds> RedisCache::Ttl(std::string_view key) {
  CheckKey(key);
  const std::string dk = DataKey(key);
  const std::uint16_t slot = KeySlot(dk);
  Reply r = Eval(kTtl, slot, {EpochKey(slot), dk}, 2);
  Check(r, "ttl");
  if (r.integer == -2) return std::nullopt;
  if (r.integer == -1) return kNoExpiry;
  return std::chrono::milliseconds(r.integer);
}

bool RedisCache::Contains(std::string_view key) {
  const bool found = Ttl(key).has_value();
  (found ? hits_ : misses_).fetch_add(1, std::memory_order_relaxed);
  return found;
}

// ---- writes -------------------------------------------------------------------------

Reply RedisCache::Write(const Script& s, const char* op, std::string_view key,
                        std::string_view value, std::uint64_t ttl_ms, std::uint8_t kind) {
  CheckKey(key);
  CheckValue(value);
  const std::string dk = DataKey(key);
  const std::uint16_t slot = KeySlot(dk);
  const char k[1] = {static_cast<char>('0' + kind)};
  Reply r = Eval(
      s, slot, {EpochKey(slot), dk, std::string_view(k, 1), NewVersion(), value, PxOf(ttl_ms)}, 2);
  Check(r, op);
  if (r.integer == 1) sets_.fetch_add(1, std::memory_order_relaxed);
  return r;
}

void RedisCache::Set(std::string_view key, std::string_view value, std::uint64_t ttl_ms,
                     std::uint8_t kind) {
  Write(kSet, "set", key, value, ttl_ms, kind);
}

bool RedisCache::Add(std::string_view key, std::string_view value, std::uint64_t ttl_ms,
                     std::uint8_t kind) {
  return Write(kAdd, "add", key, value, ttl_ms, kind).integer == 1;
}

std::optional<std::string> RedisCache::Pop(std::string_view key, bool want_value,
                                           std::uint8_t* kind) {
  CheckKey(key);
  const std::string dk = DataKey(key);
  const std::uint16_t slot = KeySlot(dk);
  // Never sent twice: a second GETDEL would find nothing, and the value
  // would be lost; an Error says the outcome is unknown instead.
  Reply r =
      Eval(kPop, slot, {EpochKey(slot), dk, want_value ? "1" : "0"}, 2, Client::Resend::kNever);
  Check(r, want_value ? "pop" : "erase");
  if (r.type != Reply::Type::kString) {
    misses_.fetch_add(1, std::memory_order_relaxed);
    return std::nullopt;
  }
  Stored s = Parse(key, r.str);
  hits_.fetch_add(1, std::memory_order_relaxed);
  deletes_.fetch_add(1, std::memory_order_relaxed);
  if (kind != nullptr) *kind = s.kind;
  return want_value ? std::string(s.value) : std::string();
}

bool RedisCache::CasCommit(std::string_view key, std::string_view expected, bool erase,
                           std::uint8_t kind, std::string_view value, const std::string& px) {
  const std::string dk = DataKey(key);
  const std::uint16_t slot = KeySlot(dk);
  const char k[1] = {static_cast<char>('0' + kind)};
  Reply r = Eval(kCas, slot,
                 {EpochKey(slot), dk, expected, erase ? "d" : "s", std::string_view(k, 1),
                  NewVersion(), value, px},
                 2);
  Check(r, "compare_and_set");
  return r.integer == 1;
}

std::int64_t RedisCache::Increment(std::string_view key, std::int64_t delta, std::int64_t initial,
                                   std::uint64_t ttl_ms) {
  CheckKey(key);
  // Optimistic: read, compute here (int64 arithmetic, which Lua's doubles
  // cannot do exactly), commit if nobody wrote meanwhile; else again.
  for (;;) {
    std::optional<Versioned> cur = Read(key, false);
    const std::int64_t base = cur ? ParseCounter(key, cur->value) : initial;
    const std::int64_t result = AddToCounter(key, base, delta);
    const std::string expected = cur ? Hex16(cur->version) : std::string();
    // A present key keeps its expiry.
    if (CasCommit(key, expected, false, static_cast<std::uint8_t>(ValueKind::integer),
                  std::to_string(result), cur ? "-1" : PxOf(ttl_ms))) {
      sets_.fetch_add(1, std::memory_order_relaxed);
      return result;
    }
  }
}

bool RedisCache::CompareAndSet(std::string_view key, std::uint64_t version, std::string_view value,
                               std::uint64_t ttl_ms, std::uint8_t kind) {
  CheckKey(key);
  CheckValue(value);
  if (version == 0) return false;  // no write has version 0
  const bool done = CasCommit(key, Hex16(version), false, kind, value, PxOf(ttl_ms));
  if (done) sets_.fetch_add(1, std::memory_order_relaxed);
  return done;
}

bool RedisCache::CompareAndErase(std::string_view key, std::uint64_t version) {
  CheckKey(key);
  if (version == 0) return false;
  const bool done = CasCommit(key, Hex16(version), true, 0, {}, "0");
  if (done) deletes_.fetch_add(1, std::memory_order_relaxed);
  return done;
}

bool RedisCache::Touch(std::string_view key, std::uint64_t ttl_ms) {
  CheckKey(key);
  const std::string dk = DataKey(key);
  const std::uint16_t slot = KeySlot(dk);
  Reply r = Eval(kTouch, slot, {EpochKey(slot), dk, NewVersion(), std::to_string(ttl_ms)}, 2);
  Check(r, "touch");
  return r.integer == 1;
}

bool RedisCache::Persist(std::string_view key) {
  CheckKey(key);
  const std::string dk = DataKey(key);
  const std::uint16_t slot = KeySlot(dk);
  Reply r = Eval(kTouch, slot, {EpochKey(slot), dk, NewVersion(), "0"}, 2);
  Check(r, "persist");
  return r.integer == 1;
}

// ---- get_or_set ---------------------------------------------------------------------

TypedValue RedisCache::GetOrSet(std::string_view key, const std::function<TypedValue()>& compute,
                                std::uint64_t ttl_ms) {
  if (std::optional<Versioned> v = Read(key, true)) return TypedValue{std::move(v->value), v->kind};
  const std::string lk = LeaseKey(key);
  const std::uint16_t lslot = KeySlot(lk);
  const std::string token = NewVersion();
  const std::uint64_t deadline = env_->MonotonicNanos() + get_or_set_timeout_ms_ * 1'000'000;
  std::uint64_t pause_us = 1000;
  for (;;) {
    Reply r = client_->Run(lslot, {"SET", lk, token, "NX", "PX", std::to_string(kLeaseMs)});
    Check(r, "get_or_set");
    if (r.type == Reply::Type::kStatus) {  // OK: ours
      // Renews the lease while compute() runs; releases it in every case.
      Mutex mu;
      CondVar cv(&mu);
      bool done = false;
      std::thread renewer([&] {
        for (;;) {
          {
            MutexLock lock(&mu);
            if (!done) {
              cv.WaitUntil(std::chrono::steady_clock::now() +
                           std::chrono::milliseconds(kLeaseMs / 3));
            }
            if (done) break;
          }
          try {  // outside mu: release() sets done at once (its join waits for this one)
            Eval(kLease, lslot, {lk, token, std::to_string(kLeaseMs)}, 1);
          } catch (const Error& e) {
            log_->warn("get_or_set: renewing a lease failed: {}", e.what());
          }
        }
      });
      auto release = [&] {
        {
          MutexLock lock(&mu);
          done = true;
          cv.SignalAll();
        }
        renewer.join();
        try {
          Eval(kLease, lslot, {lk, token}, 1);
        } catch (const Error& e) {
          log_->warn("get_or_set: releasing a lease failed (it expires in {} ms): {}", kLeaseMs,
                     e.what());
        }
      };
      try {
        // Whoever held it may have stored the value just before releasing.
        if (std::optional<Versioned> v = Read(key, false)) {
          release();
          return TypedValue{std::move(v->value), v->kind};
        }
        TypedValue value = compute();
        Set(key, value.value, ttl_ms, static_cast<std::uint8_t>(value.kind));
        release();
        return value;
      } catch (...) {
        if (renewer.joinable()) release();
        throw;
      }
    }
    // Another caller computes: wait for its value, or for its lease to end.
    env_->SleepMicros(pause_us);
    pause_us = std::min<std::uint64_t>(pause_us * 2, 20'000);
    if (get_or_set_wait_hook_) get_or_set_wait_hook_();
    if (std::optional<Versioned> v = Read(key, false)) {
      return TypedValue{std::move(v->value), v->kind};
    }
    if (env_->MonotonicNanos() >= deadline) {
      log_->warn("get_or_set key of {} bytes: gave up waiting after {} ms", key.size(),
                 get_or_set_timeout_ms_);
      throw Error(ErrorCode::busy,
                  "get_or_set: another caller has been computing the value for longer than "
                  "get_or_set_timeout (" +
                      std::to_string(get_or_set_timeout_ms_) + " ms)");
    }
  }
}

// ---- batches -----------------------------------------------------------------------

std::vector<std::optional<std::string>> RedisCache::GetMany(const std::vector<std::string>& keys) {
  for (const std::string& k : keys) CheckKey(k);
  std::vector<std::string> dks;
  std::vector<std::string> eks;
  dks.reserve(keys.size());
  eks.reserve(keys.size());
  std::vector<std::pair<std::uint16_t, Command>> cmds;
  cmds.reserve(keys.size());
  for (const std::string& k : keys) {
    dks.push_back(DataKey(k));
    const std::uint16_t slot = KeySlot(dks.back());
    eks.push_back(EpochKey(slot));
  }
  for (std::size_t i = 0; i < keys.size(); ++i) {
    cmds.emplace_back(KeySlot(dks[i]), Command{"MGET", eks[i], dks[i]});
  }
  std::vector<Reply> replies = client_->RunMany(cmds);
  std::vector<std::optional<std::string>> out(keys.size());
  std::uint64_t hits = 0;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    Check(replies[i], "get_many");
    if (replies[i].elements.size() == 2 && Live(replies[i].elements[0], replies[i].elements[1])) {
      out[i] = std::string(Parse(keys[i], replies[i].elements[1].str).value);
      ++hits;
    }
  }
  hits_.fetch_add(hits, std::memory_order_relaxed);
  misses_.fetch_add(keys.size() - hits, std::memory_order_relaxed);
  return out;
}

void RedisCache::SetMany(const std::vector<std::pair<std::string, std::string>>& items,
                         std::uint64_t ttl_ms) {
  for (const auto& [k, v] : items) {
    CheckKey(k);
    CheckValue(v);
  }
  const std::string px = PxOf(ttl_ms);
  std::vector<std::string> owned;  // data key, epoch key, version per item
  owned.reserve(items.size() * 3);
  std::vector<std::pair<std::uint16_t, Command>> calls;
  calls.reserve(items.size());
  for (const auto& [k, v] : items) {
    owned.push_back(DataKey(k));
    const std::uint16_t slot = KeySlot(owned.back());
    owned.push_back(EpochKey(slot));
    owned.push_back(NewVersion());
  }
  for (std::size_t i = 0; i < items.size(); ++i) {
    calls.emplace_back(KeySlot(owned[3 * i]), Command{owned[3 * i + 1], owned[3 * i], "0",
                                                      owned[3 * i + 2], items[i].second, px});
  }
  std::vector<Reply> replies = EvalMany(kSet, calls, 2);
  for (const Reply& r : replies) Check(r, "set_many");
  sets_.fetch_add(items.size(), std::memory_order_relaxed);
}

std::size_t RedisCache::EraseMany(const std::vector<std::string>& keys) {
  for (const std::string& k : keys) CheckKey(k);
  std::vector<std::string> owned;
  owned.reserve(keys.size() * 2);
  for (const std::string& k : keys) {
    owned.push_back(DataKey(k));
    owned.push_back(EpochKey(KeySlot(owned.back())));
  }
  std::vector<std::pair<std::uint16_t, Command>> calls;
  calls.reserve(keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) {
    calls.emplace_back(KeySlot(owned[2 * i]), Command{owned[2 * i + 1], owned[2 * i], "0"});
  }
  std::vector<Reply> replies = EvalMany(kPop, calls, 2, Client::Resend::kNever);
  std::size_t erased = 0;
  for (const Reply& r : replies) {
    Check(r, "erase_many");
    if (r.type == Reply::Type::kString) ++erased;
  }
  deletes_.fetch_add(erased, std::memory_order_relaxed);
  return erased;
}

// ---- purge and scans ------------------------------------------------------------------

void RedisCache::Purge() {
  const std::string pk = prefix_ + "purge";
  Reply r = client_->Run(KeySlot(pk), {"INCR", pk});
  Check(r, "purge");
  const std::uint64_t epoch = static_cast<std::uint64_t>(r.integer);
  const std::string e = Hex16(epoch);
  // Every slot's epoch, raised before purge() returns: a read that starts
  // afterwards, on any machine, sees the new epoch of its key's slot.
  std::vector<std::string> keys;
  keys.reserve(kSlots);
  for (std::uint32_t s = 0; s < kSlots; ++s)
    keys.push_back(EpochKey(static_cast<std::uint16_t>(s)));
  std::vector<std::pair<std::uint16_t, Command>> calls;
  calls.reserve(kSlots);
  for (std::uint32_t s = 0; s < kSlots; ++s) {
    calls.emplace_back(static_cast<std::uint16_t>(s), Command{keys[s], e});
  }
  for (const Reply& rr : EvalMany(kRaise, calls, 1)) Check(rr, "purge");
  log_->info("purged (epoch {})", epoch);
  {
    MutexLock lock(&sweep_mu_);
    sweep_epoch_ = std::max(sweep_epoch_, epoch);
  }
  StartSweep();
}

void RedisCache::StartSweep() {
  MutexLock lock(&sweep_mu_);
  sweep_cv_.SignalAll();
  if (sweeper_.joinable() || sweep_stop_) return;
  sweeper_ = std::thread([this] { SweepLoop(0); });
}

void RedisCache::SweepLoop(std::uint64_t) {
  std::uint64_t swept = 0;
  for (;;) {
    {
      MutexLock lock(&sweep_mu_);
      while (!sweep_stop_ && sweep_epoch_ <= swept) sweep_cv_.Wait();
      if (sweep_stop_) return;
      swept = sweep_epoch_;
    }
    // Deletes what the purges up to `swept` hid, one SCAN batch at a time.
    std::uint64_t deleted = 0;
    try {
      const std::string pattern = prefix_ + "k:*";
      for (const std::string& node : client_->Masters()) {
        std::string cursor = "0";
        do {
          {
            MutexLock lock(&sweep_mu_);
            if (sweep_stop_) return;
          }
          Reply r = client_->RunOn(node, {"SCAN", cursor, "MATCH", pattern, "COUNT", "500"});
          Check(r, "purge sweep");
          if (r.elements.size() != 2) break;
          cursor = r.elements[0].str;
          std::vector<std::string> owned;
          owned.reserve(r.elements[1].elements.size() * 2);
          for (const Reply& k : r.elements[1].elements) {
            owned.push_back(k.str);
            owned.push_back(EpochKey(KeySlot(k.str)));
          }
          std::vector<std::pair<std::uint16_t, Command>> calls;
          for (std::size_t i = 0; i < owned.size(); i += 2) {
            calls.emplace_back(KeySlot(owned[i]), Command{owned[i + 1], owned[i]});
          }
          if (!calls.empty()) {
            for (const Reply& d : EvalMany(kSweep, calls, 2)) deleted += d.integer == 1 ? 1 : 0;
          }
        } while (cursor != "0");
      }
      log_->info("purge sweep: deleted {} hidden values", deleted);
    } catch (const std::exception& e) {
      log_->warn("purge sweep stopped (the hidden values stay until the next purge): {}", e.what());
    }
  }
}

namespace {

// A glob (SCAN MATCH) matching exactly the text, then anything.
std::string GlobPrefix(std::string_view text) {
  std::string g;
  for (char c : text) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') g.push_back('\\');
    g.push_back(c);
  }
  g.push_back('*');
  return g;
}

}  // namespace

void RedisCache::ForEach(std::string_view prefix,
                         const std::function<bool(std::string_view, std::string_view)>& fn,
                         bool verify) {
  const std::string pattern = prefix_ + "k:" + GlobPrefix(prefix);
  const std::size_t skip = prefix_.size() + 2;
  std::unordered_map<std::uint16_t, std::string> epochs;  // of the slots met so far
  for (const std::string& node : client_->Masters()) {
    std::string cursor = "0";
    do {
      Reply r = client_->RunOn(node, {"SCAN", cursor, "MATCH", pattern, "COUNT", "500"});
      Check(r, "keys");
      if (r.elements.size() != 2) throw Error(ErrorCode::io, "keys: unexpected reply to SCAN");
      cursor = r.elements[0].str;
      const std::vector<Reply>& found = r.elements[1].elements;
      if (found.empty()) continue;
      // The epochs of slots not met yet, then the values (or headers).
      std::vector<std::uint16_t> slots;
      std::vector<std::string> eks;
      for (const Reply& k : found) {
        const std::uint16_t s = KeySlot(k.str);
        if (epochs.count(s) == 0) {
          epochs.emplace(s, std::string(kZeroEpoch));
          slots.push_back(s);
          eks.push_back(EpochKey(s));
        }
      }
      std::vector<std::pair<std::uint16_t, Command>> cmds;
      for (std::size_t i = 0; i < slots.size(); ++i)
        cmds.emplace_back(slots[i], Command{"GET", eks[i]});
      for (const Reply& k : found) {
        if (verify) {
          cmds.emplace_back(KeySlot(k.str), Command{"GET", k.str});
        } else {
          cmds.emplace_back(KeySlot(k.str), Command{"GETRANGE", k.str, "0", "33"});
        }
      }
      std::vector<Reply> replies = client_->RunMany(cmds);
      for (std::size_t i = 0; i < slots.size(); ++i) {
        Check(replies[i], "keys");
        epochs[slots[i]] = std::string(EpochOf(replies[i]));
      }
      for (std::size_t i = 0; i < found.size(); ++i) {
        const Reply& v = replies[slots.size() + i];
        Check(v, "keys");
        if (v.type != Reply::Type::kString || v.str.empty()) continue;  // gone meanwhile
        const std::string_view key = std::string_view(found[i].str).substr(skip);
        if (v.str.size() < kHeaderBytes) Parse(key, v.str);  // throws: not ours
        if (std::string_view(v.str).substr(2, 16) < epochs[KeySlot(found[i].str)]) continue;
        const std::string_view value = verify ? Parse(key, v.str).value : std::string_view();
        if (!fn(key, value)) return;
      }
    } while (cursor != "0");
  }
}

std::size_t RedisCache::Size() {
  std::size_t n = 0;
  ForEach(
      {}, [&](std::string_view, std::string_view) { return ++n, true; }, false);
  return n;
}

Stats RedisCache::GetStats() {
  Stats s;
  // Relaxed: statistics.
  s.hits = hits_.load(std::memory_order_relaxed);
  s.misses = misses_.load(std::memory_order_relaxed);
  s.sets = sets_.load(std::memory_order_relaxed);
  s.deletes = deletes_.load(std::memory_order_relaxed);
  s.keys = Size();
  return s;
}

CompactionResult RedisCache::CompactNow() {
  // A snapshot is each master's own: BGSAVE (an RDB file of its data set).
  const auto start = std::chrono::steady_clock::now();
  CompactionResult result;
  result.compacted = true;
  for (const std::string& node : client_->Masters()) {
    Reply r = client_->RunOn(node, {"BGSAVE"});
    if (r.is_error() && r.str.find("in progress") != std::string::npos) {
      result.compacted = false;  // one was running: its result predates us
      continue;
    }
    Check(r, "snapshot (BGSAVE)");
  }
  result.duration = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now() - start);
  log_->info("snapshot: BGSAVE on every master ({})",
             result.compacted ? "started" : "one already running");
  return result;
}

void RedisCache::Sync() {
  throw Error(ErrorCode::unsupported,
              "sync() is not available on a Redis backend: the servers' appendfsync "
              "(redis.conf) decides when a write is on disk (docs/cluster.md, \"Durability\")");
}

}  // namespace lilcache::cluster
