// Peers behind a loopback TCP server started by the benchmark: Redis (hiredis)
// and memcached (libmemcached). One command per round trip when measured.
#include <hiredis/hiredis.h>
#include <libmemcached/memcached.h>
#include <unistd.h>

#include <array>
#include <cstdlib>

#include <fmt/format.h>

#include "os.h"
#include "store.h"

namespace bench {
namespace {

// ---- Redis --------------------------------------------------------------------

struct RedisFree {
  void operator()(redisContext* ctx) const { redisFree(ctx); }
};
struct ReplyFree {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyFree>;

class RedisHandle final : public Handle {
 public:
  explicit RedisHandle(int port) : ctx_(redisConnect("127.0.0.1", port)) {
    if (!ctx_) throw std::runtime_error("Redis: cannot allocate a context");
    if (ctx_->err) throw std::runtime_error(fmt::format("Redis connect: {}", ctx_->errstr));
  }

  std::optional<std::string> get(std::string_view key) override {
    ReplyPtr reply = call(std::array{std::string_view("GET"), key});
    if (reply->type == REDIS_REPLY_NIL) return std::nullopt;
    expect(*reply, REDIS_REPLY_STRING, "GET");
    return std::string(reply->str, reply->len);
  }

  void set(std::string_view key, std::string_view value) override {
    expect(*call(std::array{std::string_view("SET"), key, value}), REDIS_REPLY_STATUS, "SET");
  }

  std::int64_t increment(std::string_view key, std::int64_t delta) override {
    std::string by = std::to_string(delta);
    ReplyPtr reply = call(std::array{std::string_view("INCRBY"), key, std::string_view(by)});
    expect(*reply, REDIS_REPLY_INTEGER, "INCRBY");
    return reply->integer;
  }

  bool add(std::string_view key, std::string_view value) override {
    ReplyPtr reply = call(std::array{std::string_view("SETNX"), key, value});
    expect(*reply, REDIS_REPLY_INTEGER, "SETNX");
    return reply->integer == 1;
  }

  // One MGET.
  std::vector<std::optional<std::string>> get_many(const std::vector<std::string>& keys) override {
    std::vector<std::string_view> args{"MGET"};
    args.insert(args.end(), keys.begin(), keys.end());
    ReplyPtr reply = call(args);
    expect(*reply, REDIS_REPLY_ARRAY, "MGET");
    if (reply->elements != keys.size()) throw std::runtime_error("Redis MGET: wrong reply length");
    std::vector<std::optional<std::string>> values(keys.size());
    for (std::size_t i = 0; i < keys.size(); ++i) {
      const redisReply& element = *reply->element[i];
      if (element.type == REDIS_REPLY_NIL) continue;
      expect(element, REDIS_REPLY_STRING, "MGET");
      values[i].emplace(element.str, element.len);
    }
    return values;
  }

  // One MSET.
  void set_many(const std::vector<std::pair<std::string, std::string>>& items) override {
    std::vector<std::string_view> args{"MSET"};
    for (const auto& item : items) args.insert(args.end(), {item.first, item.second});
    expect(*call(args), REDIS_REPLY_STATUS, "MSET");
  }

  // Pipelined: the whole batch is sent before the replies are read.
  void load(std::span<const std::string> keys, std::span<const std::string> values) override {
    for (std::size_t i = 0; i < keys.size(); ++i) {
      std::array<std::string_view, 3> args{"SET", keys[i], values[i]};
      auto [argv, lens] = split(args);
      if (redisAppendCommandArgv(ctx_.get(), 3, argv.data(), lens.data()) != REDIS_OK) fail("SET");
    }
    for (std::size_t i = 0; i < keys.size(); ++i) {
      void* raw = nullptr;
      if (redisGetReply(ctx_.get(), &raw) != REDIS_OK) fail("SET");
      expect(*ReplyPtr(static_cast<redisReply*>(raw)), REDIS_REPLY_STATUS, "SET");
    }
  }

 private:
  template <std::size_t N>
  static std::pair<std::array<const char*, N>, std::array<std::size_t, N>> split(
      const std::array<std::string_view, N>& args) {
    std::array<const char*, N> argv{};
    std::array<std::size_t, N> lens{};
    for (std::size_t i = 0; i < N; ++i) {
      argv[i] = args[i].data();
      lens[i] = args[i].size();
    }
    return {argv, lens};
  }

  template <std::size_t N>
  ReplyPtr call(const std::array<std::string_view, N>& args) {
    auto [argv, lens] = split(args);
    void* raw = redisCommandArgv(ctx_.get(), static_cast<int>(N), argv.data(), lens.data());
    if (raw == nullptr) fail(args[0]);
    return ReplyPtr(static_cast<redisReply*>(raw));
  }

  ReplyPtr call(const std::vector<std::string_view>& args) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    for (std::string_view arg : args) {
      argv.push_back(arg.data());
      lens.push_back(arg.size());
    }
    void* raw =
        redisCommandArgv(ctx_.get(), static_cast<int>(args.size()), argv.data(), lens.data());
    if (raw == nullptr) fail(args[0]);
    return ReplyPtr(static_cast<redisReply*>(raw));
  }

  [[noreturn]] void fail(std::string_view command) const {
    throw std::runtime_error(fmt::format("Redis {}: {}", command, ctx_->errstr));
  }

  static void expect(const redisReply& reply, int type, std::string_view command) {
    if (reply.type == type) return;
    std::string_view text = reply.str ? std::string_view(reply.str, reply.len) : "";
    throw std::runtime_error(
        fmt::format("Redis {}: unexpected reply type {} {}", command, reply.type, text));
  }

  std::unique_ptr<redisContext, RedisFree> ctx_;
};

class RedisStore final : public Store {
 public:
  RedisStore()
      : port_(free_loopback_port()),
        server_("redis-server",
                {"--port", std::to_string(port_), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", dir_.path().string()},
                port_, dir_.path() / "redis.out") {}

  std::unique_ptr<Handle> open() override { return std::make_unique<RedisHandle>(port_); }

 private:
  TempDir dir_{"redis"};  // declared first: removed after the server stopped
  int port_;
  Server server_;
};

// ---- memcached ----------------------------------------------------------------

struct McFree {
  void operator()(memcached_st* mc) const { memcached_free(mc); }
};
using McPtr = std::unique_ptr<memcached_st, McFree>;

struct MallocFree {
  void operator()(char* p) const { std::free(p); }
};

void check_mc(const memcached_st* mc, memcached_return_t rc, std::string_view what) {
  if (memcached_success(rc)) return;
  throw std::runtime_error(fmt::format("memcached {}: {}", what, memcached_last_error_message(mc)));
}

class MemcachedHandle final : public Handle {
 public:
  explicit MemcachedHandle(int port) : mc_(memcached_create(nullptr)) {
    if (!mc_) throw std::runtime_error("memcached: cannot allocate a handle");
    check_mc(mc_.get(), memcached_server_add(mc_.get(), "127.0.0.1", static_cast<in_port_t>(port)),
             "server_add");
    check_mc(mc_.get(), memcached_behavior_set(mc_.get(), MEMCACHED_BEHAVIOR_TCP_NODELAY, 1),
             "TCP_NODELAY");
  }

  std::optional<std::string> get(std::string_view key) override {
    std::size_t size = 0;
    std::uint32_t flags = 0;
    memcached_return_t rc{};
    std::unique_ptr<char, MallocFree> data(
        memcached_get(mc_.get(), key.data(), key.size(), &size, &flags, &rc));
    if (rc == MEMCACHED_NOTFOUND) return std::nullopt;
    check_mc(mc_.get(), rc, "get");
    return data ? std::string(data.get(), size) : std::string();
  }

  void set(std::string_view key, std::string_view value) override {
    check_mc(mc_.get(), store(mc_.get(), key, value), "set");
  }

  // Without replies on a second connection, then one get there: the server
  // handles a connection's commands in order, so all sets are done when it answers.
  void load(std::span<const std::string> keys, std::span<const std::string> values) override {
    McPtr loader(memcached_clone(nullptr, mc_.get()));
    if (!loader) throw std::runtime_error("memcached: cannot clone a handle");
    check_mc(loader.get(), memcached_behavior_set(loader.get(), MEMCACHED_BEHAVIOR_NOREPLY, 1),
             "NOREPLY");
    for (std::size_t i = 0; i < keys.size(); ++i) {
      check_mc(loader.get(), store(loader.get(), keys[i], values[i]), "set (load)");
    }
    if (keys.empty()) return;
    std::size_t size = 0;
    std::uint32_t flags = 0;
    memcached_return_t rc{};
    std::unique_ptr<char, MallocFree> data(
        memcached_get(loader.get(), keys.back().data(), keys.back().size(), &size, &flags, &rc));
    check_mc(loader.get(), rc, "get (load)");
  }

 private:
  static memcached_return_t store(memcached_st* mc, std::string_view key, std::string_view value) {
    return memcached_set(mc, key.data(), key.size(), value.data(), value.size(), time_t{0},
                         std::uint32_t{0});
  }

  McPtr mc_;
};

std::vector<std::string> memcached_args(int port, const StoreShape& shape) {
  // Memory for every value with room to spare (the default 64 MB would evict).
  std::size_t megabytes = 64 + 2 * shape.keys * (shape.value_size + 128) / (1u << 20);
  std::vector<std::string> args{"-l", "127.0.0.1", "-p", std::to_string(port),
                                "-U", "0",         "-m", std::to_string(megabytes)};
  if (::geteuid() == 0) args.insert(args.end(), {"-u", "root"});  // refuses root otherwise
  return args;
}

class MemcachedStore final : public Store {
 public:
  explicit MemcachedStore(const StoreShape& shape)
      : port_(free_loopback_port()),
        server_("memcached", memcached_args(port_, shape), port_, dir_.path() / "memcached.out") {}

  std::unique_ptr<Handle> open() override { return std::make_unique<MemcachedHandle>(port_); }

 private:
  TempDir dir_{"memcached"};  // declared first: removed after the server stopped
  int port_;
  Server server_;
};

}  // namespace

std::unique_ptr<Store> make_redis_store(const StoreShape&) {
  return std::make_unique<RedisStore>();
}

std::unique_ptr<Store> make_memcached_store(const StoreShape& shape) {
  return std::make_unique<MemcachedStore>(shape);
}

std::string remote_peer_versions() {
  return fmt::format("hiredis {}.{}.{}, libmemcached {}", HIREDIS_MAJOR, HIREDIS_MINOR,
                     HIREDIS_PATCH, LIBMEMCACHED_VERSION_STRING);
}

}  // namespace bench
