// The interface every measured store implements, and the list of peers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bench {

// A connection to (or handle on) one store, used by one process.
class Handle {
 public:
  virtual ~Handle() = default;

  // The value of key copied out into a new std::string, nullopt if absent.
  virtual std::optional<std::string> get(std::string_view key) = 0;
  // The value of key copied into `out` (a buffer the caller reuses, so no
  // allocation once it is large enough); false if absent. The default goes
  // through get().
  virtual bool get_into(std::string_view key, std::string& out);
  virtual void set(std::string_view key, std::string_view value) = 0;

  // Untimed bulk load of a fresh store (keys[i] -> values[i]). The default
  // calls set() for each; peers override it where a batch is much faster.
  virtual void load(std::span<const std::string> keys, std::span<const std::string> values);

  // The operations of the update benchmarks (ops_bench.cc), each in the
  // peer's own atomic or batched form; a peer without one throws Unavailable.
  // Adds delta to the decimal integer under key (absent = 0); returns the sum.
  virtual std::int64_t increment(std::string_view key, std::int64_t delta);
  // Stores value only if key is absent; returns whether it did.
  virtual bool add(std::string_view key, std::string_view value);
  // The values of keys, in order, in one batch.
  virtual std::vector<std::optional<std::string>> get_many(const std::vector<std::string>& keys);
  // Sets every item in one batch. (A vector of pairs because that is what
  // lilcache::Cache::set_many takes; every peer is given the same.)
  virtual void set_many(const std::vector<std::pair<std::string, std::string>>& items);
};

// One store instance: its files in a temporary directory, or a server process.
class Store {
 public:
  virtual ~Store() = default;
  // A new handle for the calling process (a forked child opens its own).
  virtual std::unique_ptr<Handle> open() = 0;
};

// What a store must be sized for.
struct StoreShape {
  std::size_t keys;
  std::size_t value_size;
};

struct Peer {
  std::string id;          // for --stores: "lilcache", "unordered_map", "lmdb", ...
  std::string label;       // row label in the tables
  bool multiprocess;       // false: the mix runs in this one process only
  std::size_t ops;         // cap on ops per get/set measurement (slow peers get fewer)
  std::string ops_reason;  // why the cap, for the report ("" when uncapped)
  // Creates a fresh, empty store. Throws Unavailable to be skipped.
  std::function<std::unique_ptr<Store>(const StoreShape&)> create;
};

// Implemented in peers_local.cc and peers_remote.cc.
std::unique_ptr<Store> make_lilcache_store(const StoreShape& shape);
std::unique_ptr<Store> make_map_store(const StoreShape& shape);
std::unique_ptr<Store> make_lmdb_store(const StoreShape& shape);
std::unique_ptr<Store> make_sqlite_store(const StoreShape& shape);
std::unique_ptr<Store> make_redis_store(const StoreShape& shape);
std::unique_ptr<Store> make_memcached_store(const StoreShape& shape);

// Library versions of the peers, for the report header.
std::string local_peer_versions();
std::string remote_peer_versions();

}  // namespace bench
