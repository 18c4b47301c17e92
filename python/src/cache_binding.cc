#include "cache_binding.h"

#include "fast_path.h"

#include <pybind11/stl.h>

#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace lilcache::python {

namespace py = pybind11;
using std::chrono::milliseconds;

PyCache::PyCache(const std::string& name, const Options& options, Serializer serializer)
    : serializer_(serializer) {
  {
    // Opening may wait for another process's initialization or recovery.
    py::gil_scoped_release unlocked;
    cache_ = std::make_shared<Cache>(Cache::open(name, options));
  }
  name_ = cache_->name();
  root_ = cache_->root();
}

std::shared_ptr<Cache> PyCache::Handle() const {
  if (cache_ == nullptr) {
    throw Error(ErrorCode::invalid_state, "lilcache: the cache '" + name_ + "' is closed");
  }
  return cache_;
}

void PyCache::Close() {
  std::shared_ptr<Cache> last = std::move(cache_);
  // Closing waits for this handle's background thread (a snapshot it runs).
  py::gil_scoped_release unlocked;
  last.reset();
}

namespace {

std::int64_t Int64(py::handle obj, const char* what) {
  if (!PyLong_Check(obj.ptr()) || PyBool_Check(obj.ptr())) {
    throw py::type_error(std::string(what) + " must be an int, not " + Py_TYPE(obj.ptr())->tp_name);
  }
  long long n = PyLong_AsLongLong(obj.ptr());
  if (n == -1 && PyErr_Occurred()) throw py::error_already_set();
  return n;
}

Serializer SerializerOf(py::handle obj) {
  if (obj.is_none()) return Serializer::none;
  if (py::isinstance<py::str>(obj) && obj.cast<std::string>() == "pickle") {
    return Serializer::pickle;
  }
  throw py::value_error("serializer must be None or 'pickle', not " +
                        py::repr(obj).cast<std::string>());
}

py::object Seconds(std::chrono::microseconds us) {
  return py::float_(static_cast<double>(us.count()) / 1e6);
}

py::dict CompactionDict(const CompactionResult& r) {
  py::dict d;
  d["compacted"] = r.compacted;
  d["generation"] = r.generation;
  d["bytes_before"] = r.bytes_before;
  d["bytes_after"] = r.bytes_after;
  d["keys_live"] = r.keys_live;
  d["keys_expired"] = r.keys_expired;
  d["keys_deleted"] = r.keys_deleted;
  d["keys_evicted"] = r.keys_evicted;
  d["duration"] = Seconds(r.duration);
  d["writer_pause"] = Seconds(r.writer_pause);
  return d;
}

py::dict StatsDict(const Stats& s) {
  py::dict d;
  d["hits"] = s.hits;
  d["misses"] = s.misses;
  d["sets"] = s.sets;
  d["deletes"] = s.deletes;
  d["expired"] = s.expired;
  d["keys"] = s.keys;
  d["bytes_live"] = s.bytes_live;
  d["bytes_dead"] = s.bytes_dead;
  d["bytes_file"] = s.bytes_file;
  d["generation"] = s.generation;
  d["index_slots"] = s.index_slots;
  d["index_used"] = s.index_used;
  d["processes"] = s.processes;
  d["compactions"] = s.compactions;
  d["snapshots"] = s.snapshots;
  d["last_snapshot_ms"] = s.last_snapshot_ms;
  d["evictions"] = s.evictions;
  d["max_bytes"] = s.max_bytes;
  return d;
}

// incr (down = false) and decr: C++ increment/decrement of key by delta,
// starting at dflt, or KeyError for an absent key if dflt is None.
std::int64_t Increment(const PyCache& self, py::handle key, py::handle delta, py::handle dflt,
                       bool down) {
  Key k(key);
  const std::int64_t d = Int64(delta, "delta");
  if (dflt.is_none() && !Unlocked(self, [&](Cache& c) { return c.contains(k.view()); })) {
    RaiseKeyError(key);
  }
  const std::int64_t initial = dflt.is_none() ? 0 : Int64(dflt, "default");
  return Unlocked(self, [&](Cache& c) {
    return down ? c.decrement(k.view(), d, initial) : c.increment(k.view(), d, initial);
  });
}

// Python's main thread (where it runs signal handlers), read at import.
unsigned long g_main_thread = 0;

std::unique_ptr<PyCache> Open(const std::string& name, py::handle root, py::handle snapshot,
                              py::handle expires, py::handle loglevel, py::handle max_bytes,
                              py::handle sync, py::handle compact_dead_ratio,
                              py::handle get_or_set_timeout, bool create, py::handle serializer,
                              py::handle backend) {
  // "" would mean the default to the engine: only None says that here.
  auto text = [](py::handle obj, const char* what) {
    std::string value = py::str(obj).cast<std::string>();  // str or os.PathLike
    if (value.empty()) {
      throw py::value_error(std::string(what) + " must not be empty (None for the default)");
    }
    return value;
  };
  Options o;
  if (!root.is_none()) o.root = text(root, "root");
  o.snapshot = DurationOption(snapshot, "snapshot");
  o.expires = DurationOption(expires, "expires");
  if (!loglevel.is_none()) o.loglevel = text(loglevel, "loglevel");
  if (!max_bytes.is_none()) {
    std::int64_t n = Int64(max_bytes, "max_bytes");
    if (n <= 0) throw py::value_error("max_bytes must be > 0 (None leaves the cache's limit)");
    o.max_bytes = static_cast<std::uint64_t>(n);
  }
  o.sync = DurationOption(sync, "sync");
  if (!compact_dead_ratio.is_none()) o.compact_dead_ratio = compact_dead_ratio.cast<double>();
  if (!get_or_set_timeout.is_none()) {
    o.get_or_set_timeout = DurationOption(get_or_set_timeout, "get_or_set_timeout");
  }
  o.create_if_missing = create;
  // None: $LILCACHE_BACKEND, else local (Options::backend's "").
  if (!backend.is_none()) {
    if (!py::isinstance<py::str>(backend)) {
      throw py::type_error("backend must be a str (a URL, or 'local') or None");
    }
    o.backend = text(backend, "backend");
  }
  // Ctrl-C (any Python signal handler that raises) ends a get_or_set wait
  // of the main thread, where Python runs its handlers, as it ends
  // time.sleep(): the handler's exception reaches the caller.
  // Runs without the GIL: it takes it only in the main thread.
  o.get_or_set_wait_hook = [] {
    if (PyThread_get_thread_ident() != g_main_thread) return;
    py::gil_scoped_acquire locked;
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
  };
  return std::make_unique<PyCache>(name, o, SerializerOf(serializer));
}

}  // namespace

void RaiseKeyError(py::handle key) {
  PyErr_SetObject(PyExc_KeyError, key.ptr());
  throw py::error_already_set();
}

void RegisterCache(py::module_& m) {
  g_main_thread =
      py::module_::import("threading").attr("main_thread")().attr("ident").cast<unsigned long>();
  py::class_<PyCache> cls(m, "_Cache",
                          "The C++ handle under lilcache.Cache (use lilcache.Cache: this class "
                          "has its methods, documented there).");
  cls.def(py::init(&Open), py::arg("name") = "default", py::kw_only(), py::arg("root") = py::none(),
          py::arg("snapshot") = py::none(), py::arg("expires") = py::none(),
          py::arg("loglevel") = py::none(), py::arg("max_bytes") = py::none(),
          py::arg("sync") = py::none(), py::arg("compact_dead_ratio") = py::none(),
          py::arg("get_or_set_timeout") = py::none(), py::arg("create") = true,
          py::arg("serializer") = py::none(), py::arg("backend") = py::none())
      .def_property_readonly("name", &PyCache::name, "The cache's name.")
      .def_property_readonly("root", &PyCache::root,
                             "The directory holding the cache's files (root resolved).")
      .def_property_readonly("closed", &PyCache::closed, "Whether close() was called.")
      .def_property_readonly(
          "serializer",
          [](const PyCache& self) -> py::object {
            if (self.serializer() == Serializer::pickle) return py::str("pickle");
            return py::none();
          },
          "'pickle' or None: how values other than str, bytes and int are stored.")
      .def(
          "add",
          [](const PyCache& self, py::handle key, py::handle value, py::handle expire) {
            Key k(key);
            Encoded e = EncodeValue(value, self.serializer());
            auto ttl = Duration(expire, "expire");
            return Unlocked(self,
                            [&](Cache& c) { return c.add(k.view(), e.bytes, Write(e, ttl)); });
          },
          py::arg("key"), py::arg("value"), py::arg("expire") = py::none(),
          "Stores value under key only if the key is absent; returns whether it did. Among "
          "racing add()s of one key, in all processes, exactly one returns True.")
      .def(
          "pop",
          [](const PyCache& self, py::handle key, py::handle dflt) -> py::object {
            Key k(key);
            auto v = Unlocked(self, [&](Cache& c) { return c.pop_typed(k.view()); });
            if (!v) return py::reinterpret_borrow<py::object>(dflt);
            return Decode(self, *v);
          },
          py::arg("key"), py::arg("default") = py::none(),
          "Removes key and returns its value, or default if it was absent. Among racing "
          "pop()s, in all processes, exactly one gets a given value.")
      .def(
          "delete",
          [](const PyCache& self, py::handle key) {
            Key k(key);
            return Unlocked(self, [&](Cache& c) { return c.erase(k.view()); });
          },
          py::arg("key"), "Removes key; returns whether a live value was removed.")
      .def(
          "__delitem__",
          [](const PyCache& self, py::handle key) {
            Key k(key);
            if (!Unlocked(self, [&](Cache& c) { return c.erase(k.view()); })) RaiseKeyError(key);
          },
          py::arg("key"), "del cache[key]: removes key; KeyError if it was absent.")
      .def(
          "__len__",
          [](const PyCache& self) { return Unlocked(self, [](Cache& c) { return c.size(); }); },
          "len(cache): the number of live, unexpired keys (a scan of the index).")
      .def(
          "incr",
          [](const PyCache& self, py::handle key, py::handle delta, py::handle dflt) {
            return Increment(self, key, delta, dflt, false);
          },
          py::arg("key"), py::arg("delta") = 1, py::arg("default") = 0,
          "Adds delta to the integer under key, atomically across processes, and returns the "
          "new value. An absent key starts at default (None: KeyError; the check and the "
          "increment are then two steps, so a key removed meanwhile starts at 0). "
          "InvalidArgumentError if the value is not an integer, LimitError on int64 overflow "
          "(the key is then unchanged). A present key keeps its expiry.")
      .def(
          "decr",
          [](const PyCache& self, py::handle key, py::handle delta, py::handle dflt) {
            return Increment(self, key, delta, dflt, true);
          },
          py::arg("key"), py::arg("delta") = 1, py::arg("default") = 0,
          "incr(key, -delta, default).")
      .def(
          "touch",
          [](const PyCache& self, py::handle key, py::handle expire) {
            Key k(key);
            auto ttl = Duration(expire, "expire");
            return Unlocked(self, [&](Cache& c) {
              return ttl ? c.touch(k.view(), *ttl) : c.persist(k.view());
            });
          },
          py::arg("key"), py::arg("expire") = py::none(),
          "Gives key a new expiry, expire from now (None: never expires, as diskcache's "
          "touch). Returns whether the key exists. The value and its type are kept.")
      .def(
          "ttl",
          [](const PyCache& self, py::handle key) -> py::object {
            Key k(key);
            auto t = Unlocked(self, [&](Cache& c) { return c.ttl(k.view()); });
            if (!t) return py::none();
            if (*t == kNoExpiry) return py::float_(std::numeric_limits<double>::infinity());
            return py::float_(static_cast<double>(t->count()) / 1000.0);
          },
          py::arg("key"),
          "Seconds until key expires (float), math.inf if it never does, None if absent.")
      .def(
          "get_or_set",
          [](const PyCache& self, py::handle key, py::function compute, py::handle expire) {
            Key k(key);
            auto ttl = Duration(expire, "expire");
            const Serializer serializer = self.serializer();
            auto computed = [&compute, serializer]() -> TypedValue {
              py::gil_scoped_acquire locked;
              py::object result = compute();
              Encoded e = EncodeValue(result, serializer);
              return TypedValue{std::string(e.bytes), e.kind};
            };
            TypedValue v = Unlocked(self, [&](Cache& c) {
              return c.get_or_set(k.view(), computed,
                                  WriteOptions{.ttl = ttl.value_or(milliseconds(0))});
            });
            return Decode(self, v);
          },
          py::arg("key"), py::arg("compute"), py::arg("expire") = py::none(),
          "The value of key; if absent, compute() is called, its result stored (expiring "
          "after expire) and returned. Across all threads and processes only one caller "
          "computes a key at a time: the others wait (the GIL released) and return its value. "
          "If compute raises, the exception propagates, nothing is stored and a waiter "
          "computes instead. Waits at most the cache's get_or_set_timeout (default 30 s), "
          "then raises Error (code 'busy'); Ctrl-C interrupts the wait (KeyboardInterrupt).")
      .def(
          "keys",
          [](const PyCache& self, py::handle prefix, py::handle limit) {
            Key p(prefix);
            std::size_t n = SIZE_MAX;
            if (!limit.is_none()) {
              std::int64_t l = Int64(limit, "limit");
              if (l < 0) throw py::value_error("limit must be >= 0");
              n = static_cast<std::size_t>(l);
            }
            auto keys = Unlocked(self, [&](Cache& c) { return c.keys(p.view(), n); });
            py::list out;
            for (const std::string& k : keys) out.append(KeyObject(k));
            return out;
          },
          py::arg("prefix") = "", py::arg("limit") = py::none(),
          "Live keys starting with prefix (all for ''), at most limit, in no order: str "
          "where the key is valid UTF-8, else bytes. A scan of the index.")
      .def(
          "purge", [](const PyCache& self) { Unlocked(self, [](Cache& c) { c.purge(); }); },
          "Removes every key, for every process, at once (O(1)).")
      .def(
          "clear",
          [](const PyCache& self) {
            return Unlocked(self, [](Cache& c) {
              std::size_t n = c.size();
              c.purge();
              return n;
            });
          },
          "purge(), returning the number of keys there were just before it (keys written "
          "meanwhile by others may or may not be counted or removed).")
      .def(
          "stats",
          [](const PyCache& self) {
            return StatsDict(Unlocked(self, [](Cache& c) { return c.stats(); }));
          },
          "Counters summed over every process (hits, misses, sets, deletes, expired) and "
          "sizes (keys, bytes_live, bytes_dead, bytes_file, generation, ...): a dict of the "
          "C++ Stats fields.")
      .def(
          "compact",
          [](const PyCache& self) {
            return CompactionDict(Unlocked(self, [](Cache& c) { return c.compact(); }));
          },
          "Compacts the log now (also a snapshot: on disk when it returns). Returns a dict: "
          "compacted (False if another process was compacting), generation, bytes_before, "
          "bytes_after, keys_live, keys_expired, keys_deleted, keys_evicted, duration and "
          "writer_pause (seconds).")
      .def(
          "snapshot",
          [](const PyCache& self) {
            return CompactionDict(Unlocked(self, [](Cache& c) { return c.snapshot(); }));
          },
          "Takes a snapshot now: a compaction whose result and every earlier write are on "
          "disk when it returns. Returns compact()'s dict.")
      .def(
          "sync", [](const PyCache& self) { Unlocked(self, [](Cache& c) { c.sync(); }); },
          "Makes every write that returned before it durable (on disk) without compacting.")
      .def("close", &PyCache::Close,
           "Closes the handle (idempotent): later calls raise Error (code 'invalid_state'). "
           "The data stays. Calls running in other threads finish first.");
  InstallFastPaths(cls);
}

}  // namespace lilcache::python
