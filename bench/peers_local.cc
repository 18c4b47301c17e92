// In-process peers: lilcache, std::unordered_map, LMDB and SQLite.
#include <lilcache/lilcache.h>
#include <lmdb.h>
#include <sqlite3.h>

#include <algorithm>
#include <charconv>
#include <functional>
#include <unordered_map>

#include <fmt/format.h>

#include "os.h"
#include "store.h"

namespace bench {

bool Handle::get_into(std::string_view key, std::string& out) {
  std::optional<std::string> value = get(key);
  if (!value) return false;
  out.assign(*value);
  return true;
}

void Handle::load(std::span<const std::string> keys, std::span<const std::string> values) {
  for (std::size_t i = 0; i < keys.size(); ++i) set(keys[i], values[i]);
}

std::int64_t Handle::increment(std::string_view, std::int64_t) {
  throw Unavailable("no increment");
}

bool Handle::add(std::string_view, std::string_view) { throw Unavailable("no add"); }

std::vector<std::optional<std::string>> Handle::get_many(const std::vector<std::string>&) {
  throw Unavailable("no get_many");
}

void Handle::set_many(const std::vector<std::pair<std::string, std::string>>&) {
  throw Unavailable("no set_many");
}

namespace {

// ---- lilcache -----------------------------------------------------------------

// Options{.root = ...} would trip GCC 12's -Wmissing-field-initializers (-Wextra).
lilcache::Options options_at(const std::filesystem::path& root) {
  lilcache::Options options;
  options.root = root.string();
  return options;
}

class LilcacheHandle final : public Handle {
 public:
  explicit LilcacheHandle(const std::filesystem::path& root)
      : cache_(lilcache::Cache::open("bench", options_at(root))) {}

  std::optional<std::string> get(std::string_view key) override { return cache_.get(key); }
  bool get_into(std::string_view key, std::string& out) override { return cache_.get(key, out); }
  void set(std::string_view key, std::string_view value) override { cache_.set(key, value); }

  std::int64_t increment(std::string_view key, std::int64_t delta) override {
    return cache_.increment(key, delta);
  }
  bool add(std::string_view key, std::string_view value) override { return cache_.add(key, value); }
  std::vector<std::optional<std::string>> get_many(const std::vector<std::string>& keys) override {
    return cache_.get_many(keys);
  }
  void set_many(const std::vector<std::pair<std::string, std::string>>& items) override {
    cache_.set_many(items);
  }

 private:
  lilcache::Cache cache_;
};

class LilcacheStore final : public Store {
 public:
  std::unique_ptr<Handle> open() override { return std::make_unique<LilcacheHandle>(dir_.path()); }

 private:
  TempDir dir_{"lilcache"};
};

// ---- std::unordered_map (one process: the practical floor) ----------------------

// Transparent hashing, so that lookups by std::string_view build no key string.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};
using Map = std::unordered_map<std::string, std::string, StringHash, std::equal_to<>>;

class MapHandle final : public Handle {
 public:
  explicit MapHandle(Map& map) : map_(map) {}

  std::optional<std::string> get(std::string_view key) override {
    auto it = map_.find(key);
    if (it == map_.end()) return std::nullopt;
    return it->second;
  }

  // Lookup and copy into the reused buffer: the floor for get_into.
  bool get_into(std::string_view key, std::string& out) override {
    auto it = map_.find(key);
    if (it == map_.end()) return false;
    out.assign(it->second);
    return true;
  }

  void set(std::string_view key, std::string_view value) override {
    auto it = map_.find(key);
    if (it != map_.end()) {
      it->second.assign(value);
    } else {
      map_.emplace(key, value);
    }
  }

 private:
  Map& map_;
};

class MapStore final : public Store {
 public:
  explicit MapStore(std::size_t keys) { map_.reserve(keys); }
  std::unique_ptr<Handle> open() override { return std::make_unique<MapHandle>(map_); }

 private:
  Map map_;
};

// ---- LMDB ---------------------------------------------------------------------

void check_mdb(int rc, std::string_view what) {
  if (rc != MDB_SUCCESS)
    throw std::runtime_error(fmt::format("LMDB {}: {}", what, mdb_strerror(rc)));
}

struct EnvCloser {
  void operator()(MDB_env* env) const { mdb_env_close(env); }
};
struct TxnAborter {
  void operator()(MDB_txn* txn) const { mdb_txn_abort(txn); }
};
using EnvPtr = std::unique_ptr<MDB_env, EnvCloser>;
using TxnPtr = std::unique_ptr<MDB_txn, TxnAborter>;

MDB_val as_val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }

// MDB_NOSYNC | MDB_NOMETASYNC | MDB_WRITEMAP; one put per write transaction; a
// get runs in one read-only transaction renewed per get (mdb_txn_renew/reset).
class LmdbHandle final : public Handle {
 public:
  LmdbHandle(const std::filesystem::path& dir, std::size_t map_size) {
    MDB_env* env = nullptr;
    check_mdb(mdb_env_create(&env), "mdb_env_create");
    env_.reset(env);
    check_mdb(mdb_env_set_mapsize(env, map_size), "mdb_env_set_mapsize");
    check_mdb(mdb_env_open(env, dir.c_str(), MDB_NOSYNC | MDB_NOMETASYNC | MDB_WRITEMAP, 0600),
              "mdb_env_open " + dir.string());
    TxnPtr txn = begin(0);
    check_mdb(mdb_dbi_open(txn.get(), nullptr, 0, &dbi_), "mdb_dbi_open");
    check_mdb(mdb_txn_commit(txn.release()), "mdb_txn_commit");
    reader_ = begin(MDB_RDONLY);
    mdb_txn_reset(reader_.get());
  }

  std::optional<std::string> get(std::string_view key) override {
    check_mdb(mdb_txn_renew(reader_.get()), "mdb_txn_renew");
    MDB_val k = as_val(key);
    MDB_val v{};
    int rc = mdb_get(reader_.get(), dbi_, &k, &v);
    std::optional<std::string> value;
    if (rc == MDB_SUCCESS) value.emplace(static_cast<const char*>(v.mv_data), v.mv_size);
    mdb_txn_reset(reader_.get());
    if (rc != MDB_NOTFOUND) check_mdb(rc, "mdb_get");
    return value;
  }

  bool get_into(std::string_view key, std::string& out) override {
    check_mdb(mdb_txn_renew(reader_.get()), "mdb_txn_renew");
    MDB_val k = as_val(key);
    MDB_val v{};
    int rc = mdb_get(reader_.get(), dbi_, &k, &v);
    if (rc == MDB_SUCCESS) out.assign(static_cast<const char*>(v.mv_data), v.mv_size);
    mdb_txn_reset(reader_.get());
    if (rc != MDB_NOTFOUND) check_mdb(rc, "mdb_get");
    return rc == MDB_SUCCESS;
  }

  void set(std::string_view key, std::string_view value) override {
    TxnPtr txn = begin(0);
    MDB_val k = as_val(key);
    MDB_val v = as_val(value);
    check_mdb(mdb_put(txn.get(), dbi_, &k, &v, 0), "mdb_put");
    check_mdb(mdb_txn_commit(txn.release()), "mdb_txn_commit");  // frees txn even on failure
  }

  // One write transaction that reads, adds and writes (LMDB's writer mutex
  // serializes write transactions across processes).
  std::int64_t increment(std::string_view key, std::int64_t delta) override {
    TxnPtr txn = begin(0);
    MDB_val k = as_val(key);
    MDB_val v{};
    std::int64_t number = 0;
    int rc = mdb_get(txn.get(), dbi_, &k, &v);
    if (rc == MDB_SUCCESS) {
      const char* text = static_cast<const char*>(v.mv_data);
      auto parsed = std::from_chars(text, text + v.mv_size, number);
      if (parsed.ec != std::errc() || parsed.ptr != text + v.mv_size) {
        throw std::runtime_error(fmt::format("LMDB increment: the value of {} is no integer", key));
      }
    } else if (rc != MDB_NOTFOUND) {
      check_mdb(rc, "mdb_get");
    }
    number += delta;
    char out[24];
    char* end = std::to_chars(out, out + sizeof out, number).ptr;
    MDB_val nv = as_val(std::string_view(out, static_cast<std::size_t>(end - out)));
    check_mdb(mdb_put(txn.get(), dbi_, &k, &nv, 0), "mdb_put");
    check_mdb(mdb_txn_commit(txn.release()), "mdb_txn_commit");
    return number;
  }

  // A put with MDB_NOOVERWRITE; on an existing key the transaction is aborted.
  bool add(std::string_view key, std::string_view value) override {
    TxnPtr txn = begin(0);
    MDB_val k = as_val(key);
    MDB_val v = as_val(value);
    int rc = mdb_put(txn.get(), dbi_, &k, &v, MDB_NOOVERWRITE);
    if (rc == MDB_KEYEXIST) return false;
    check_mdb(rc, "mdb_put");
    check_mdb(mdb_txn_commit(txn.release()), "mdb_txn_commit");
    return true;
  }

  // Every get in one read-only transaction.
  std::vector<std::optional<std::string>> get_many(const std::vector<std::string>& keys) override {
    check_mdb(mdb_txn_renew(reader_.get()), "mdb_txn_renew");
    std::vector<std::optional<std::string>> values;
    values.reserve(keys.size());
    int rc = MDB_SUCCESS;
    for (const std::string& key : keys) {
      MDB_val k = as_val(key);
      MDB_val v{};
      rc = mdb_get(reader_.get(), dbi_, &k, &v);
      if (rc == MDB_SUCCESS) {
        values.emplace_back(std::in_place, static_cast<const char*>(v.mv_data), v.mv_size);
      } else if (rc == MDB_NOTFOUND) {
        values.emplace_back();
      } else {
        break;
      }
    }
    mdb_txn_reset(reader_.get());
    if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) check_mdb(rc, "mdb_get");
    return values;
  }

  // Every put in one write transaction.
  void set_many(const std::vector<std::pair<std::string, std::string>>& items) override {
    TxnPtr txn = begin(0);
    for (const auto& item : items) {
      MDB_val k = as_val(item.first);
      MDB_val v = as_val(item.second);
      check_mdb(mdb_put(txn.get(), dbi_, &k, &v, 0), "mdb_put");
    }
    check_mdb(mdb_txn_commit(txn.release()), "mdb_txn_commit");
  }

 private:
  TxnPtr begin(unsigned flags) {
    MDB_txn* txn = nullptr;
    check_mdb(mdb_txn_begin(env_.get(), nullptr, flags, &txn), "mdb_txn_begin");
    return TxnPtr(txn);
  }

  EnvPtr env_;  // declared first: closed after the transaction below is aborted
  TxnPtr reader_;
  MDB_dbi dbi_ = 0;
};

class LmdbStore final : public Store {
 public:
  explicit LmdbStore(const StoreShape& shape)
      // Generous: copy-on-write B-tree pages, and overwrites leave free pages.
      : map_size_(std::max<std::size_t>(std::size_t{1} << 30,
                                        4 * shape.keys * (shape.value_size + 128))) {}

  std::unique_ptr<Handle> open() override {
    return std::make_unique<LmdbHandle>(dir_.path(), map_size_);
  }

 private:
  TempDir dir_{"lmdb"};
  std::size_t map_size_;
};

// ---- SQLite -------------------------------------------------------------------

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtFinalizer {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

// Resets a statement when leaving a scope, whatever happened.
class StmtReset {
 public:
  explicit StmtReset(sqlite3_stmt* stmt) : stmt_(stmt) {}
  StmtReset(const StmtReset&) = delete;
  StmtReset& operator=(const StmtReset&) = delete;
  ~StmtReset() { sqlite3_reset(stmt_); }

 private:
  sqlite3_stmt* stmt_;
};

// WAL, synchronous=NORMAL, prepared statements, one table (key BLOB PRIMARY
// KEY, value BLOB); each set is its own (autocommit) transaction.
class SqliteHandle final : public Handle {
 public:
  explicit SqliteHandle(const std::filesystem::path& file) {
    sqlite3* db = nullptr;
    int rc =
        sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
    db_.reset(db);  // a handle is returned (and must be closed) even on failure
    check(rc, "open " + file.string());
    sqlite3_busy_timeout(db, 60'000);  // writers in other processes
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=NORMAL");
    exec("CREATE TABLE IF NOT EXISTS kv(key BLOB PRIMARY KEY, value BLOB)");
    get_ = prepare("SELECT value FROM kv WHERE key = ?1");
    set_ = prepare("INSERT OR REPLACE INTO kv(key, value) VALUES (?1, ?2)");
  }

  std::optional<std::string> get(std::string_view key) override {
    StmtReset reset(get_.get());
    bind(get_.get(), 1, key);
    int rc = sqlite3_step(get_.get());
    if (rc == SQLITE_DONE) return std::nullopt;
    if (rc != SQLITE_ROW) check(rc, "SELECT");
    const void* data = sqlite3_column_blob(get_.get(), 0);
    auto size = static_cast<std::size_t>(sqlite3_column_bytes(get_.get(), 0));
    if (size == 0) return std::string();
    return std::string(static_cast<const char*>(data), size);
  }

  void set(std::string_view key, std::string_view value) override {
    StmtReset reset(set_.get());
    bind(set_.get(), 1, key);
    bind(set_.get(), 2, value);
    int rc = sqlite3_step(set_.get());
    if (rc != SQLITE_DONE) check(rc, "INSERT");
  }

  void load(std::span<const std::string> keys, std::span<const std::string> values) override {
    exec("BEGIN");
    Handle::load(keys, values);
    exec("COMMIT");
  }

 private:
  void check(int rc, std::string_view what) const {
    if (rc == SQLITE_OK || rc == SQLITE_ROW || rc == SQLITE_DONE) return;
    throw std::runtime_error(
        fmt::format("SQLite {}: {} ({})", what, sqlite3_errmsg(db_.get()), sqlite3_errstr(rc)));
  }

  void exec(const char* sql) {
    check(sqlite3_exec(db_.get(), sql, nullptr, nullptr, nullptr), sql);
  }

  StmtPtr prepare(const char* sql) {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v2(db_.get(), sql, -1, &stmt, nullptr);
    StmtPtr owned(stmt);
    check(rc, sql);
    return owned;
  }

  void bind(sqlite3_stmt* stmt, int index, std::string_view blob) {
    check(sqlite3_bind_blob(stmt, index, blob.data(), static_cast<int>(blob.size()), SQLITE_STATIC),
          "bind");
  }

  std::unique_ptr<sqlite3, DbCloser> db_;  // declared first: closed after the statements
  StmtPtr get_;
  StmtPtr set_;
};

class SqliteStore final : public Store {
 public:
  std::unique_ptr<Handle> open() override {
    return std::make_unique<SqliteHandle>(dir_.path() / "bench.sqlite");
  }

 private:
  TempDir dir_{"sqlite"};
};

}  // namespace

std::unique_ptr<Store> make_lilcache_store(const StoreShape&) {
  return std::make_unique<LilcacheStore>();
}

std::unique_ptr<Store> make_map_store(const StoreShape& shape) {
  return std::make_unique<MapStore>(shape.keys);
}

std::unique_ptr<Store> make_lmdb_store(const StoreShape& shape) {
  return std::make_unique<LmdbStore>(shape);
}

std::unique_ptr<Store> make_sqlite_store(const StoreShape&) {
  return std::make_unique<SqliteStore>();
}

std::string local_peer_versions() {
  return fmt::format("lilcache {}, LMDB {}.{}.{}, SQLite {}", lilcache::version(),
                     MDB_VERSION_MAJOR, MDB_VERSION_MINOR, MDB_VERSION_PATCH, sqlite3_libversion());
}

}  // namespace bench
