// lilcache._lilcache: the extension module under the Python package
// lilcache (python/lilcache/__init__.py). It binds the public C++ API only
// (include/lilcache/).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cache_binding.h"
#include "convert.h"
#include "errors.h"
#include "lilcache/lilcache.h"
#include "lilcache/server.h"

namespace lilcache::python {
namespace {

namespace py = pybind11;

// An HTTP server over a cache, for lilcache.start(). It keeps the C++ handle
// alive while it exists. run() blocks with the GIL released; stop() may be
// called from any thread (a Python signal handler in the main thread);
// server_ is guarded by the GIL (close() nulls it).
class PyServer {
 public:
  PyServer(const PyCache& cache, const std::string& host, std::uint16_t port,
           const ServerOptions& options)
      : cache_(cache.Handle()) {
    py::gil_scoped_release unlocked;
    raise_file_limit();
    server_ = std::make_unique<Server>(*cache_, host, port, options);
  }
  ~PyServer() {
    py::gil_scoped_release unlocked;
    server_.reset();
    cache_.reset();
  }
  void Run() {
    if (server_ == nullptr) throw Error(ErrorCode::invalid_state, "lilcache: the server is closed");
    py::gil_scoped_release unlocked;
    server_->run();
  }
  void Stop() {
    if (server_ != nullptr) server_->stop();
  }
  // Stops and destroys the server: the port is free when it returns.
  void Close() {
    std::unique_ptr<Server> dying = std::move(server_);  // under the GIL, as Stop() reads it
    py::gil_scoped_release unlocked;
    dying.reset();  // waits for a run() still running in another thread
  }
  std::string url() const { return Live().url(); }
  std::uint16_t port() const { return Live().port(); }

 private:
  const Server& Live() const {
    if (server_ == nullptr) throw Error(ErrorCode::invalid_state, "lilcache: the server is closed");
    return *server_;
  }

  std::shared_ptr<Cache> cache_;
  std::unique_ptr<Server> server_;  // null once closed
};

std::unique_ptr<PyServer> NewServer(const PyCache& cache, const std::string& host,
                                    std::uint16_t port, std::optional<std::string> token,
                                    std::vector<std::string> allowed_hosts,
                                    std::vector<std::string> allowed_origins, unsigned threads,
                                    std::size_t max_connections, const std::string& loglevel) {
  ServerOptions o;
  o.token = std::move(token);
  o.allowed_hosts = std::move(allowed_hosts);
  o.allowed_origins = std::move(allowed_origins);
  o.threads = threads;
  o.max_connections = max_connections;
  o.loglevel = loglevel;
  return std::make_unique<PyServer>(cache, host, port, o);
}

// For bench/python/bench.py (where a call's time goes): the engine's own
// time for get() of each key into one buffer (as the binding's get reads),
// or set() of each key/value pair, timed in C++ with the GIL released (no
// Python per call): (nanoseconds, keys found; for sets, the pairs).
std::pair<std::int64_t, std::size_t> BenchEngine(const PyCache& cache, const py::list& keys,
                                                 const py::object& values) {
  std::vector<std::string> ks;
  std::vector<std::string> vs;
  for (py::handle k : keys) ks.emplace_back(Key(k).view());
  if (!values.is_none()) {
    for (py::handle v : values) vs.emplace_back(EncodeValue(v, Serializer::none).bytes);
    if (vs.size() != ks.size()) throw py::value_error("keys and values differ in length");
  }
  std::shared_ptr<Cache> c = cache.Handle();
  py::gil_scoped_release unlocked;
  std::size_t found = 0;
  std::string buffer;
  ValueKind kind = ValueKind::bytes;
  auto start = std::chrono::steady_clock::now();
  if (vs.empty()) {
    for (const std::string& k : ks) found += c->get(k, buffer, &kind);
  } else {
    for (std::size_t i = 0; i < ks.size(); ++i) c->set(ks[i], vs[i]);
  }
  auto elapsed = std::chrono::steady_clock::now() - start;
  return {std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count(),
          vs.empty() ? found : vs.size()};
}

}  // namespace
}  // namespace lilcache::python

PYBIND11_MODULE(_lilcache, m) {
  namespace py = pybind11;
  using namespace lilcache::python;
  m.doc() = "The C++ engine under the lilcache package (use `import lilcache`).";
  RegisterErrors(m);
  RegisterCache(m);

  py::class_<PyServer>(m, "_Server", "lilcache.start()'s HTTP server (docs/rest.md).")
      .def(py::init(&NewServer), py::arg("cache"), py::arg("host"), py::arg("port"),
           py::arg("token"), py::arg("allowed_hosts"), py::arg("allowed_origins"),
           py::arg("threads"), py::arg("max_connections"), py::arg("loglevel"))
      .def("run", &PyServer::Run, "Serves until stop() (the GIL released).")
      .def("stop", &PyServer::Stop, "Stops run(); callable from any thread.")
      .def("close", &PyServer::Close,
           "Stops and destroys the server (the port is free when it returns). Not while run() "
           "is still running in another thread: stop() it and wait for it first.")
      .def_property_readonly("url", &PyServer::url)
      .def_property_readonly("port", &PyServer::port);

  m.def("_bench_engine", &BenchEngine, py::arg("cache"), py::arg("keys"),
        py::arg("values") = py::none(),
        "For bench/python/bench.py: (ns, keys found) of the engine's get() of each key "
        "(values None) or set() of each pair (ns, pairs), timed in C++, the GIL released.");
  m.def(
      "parse_duration",
      [](py::handle text) {
        // A string is parsed as it is ('0s' is 0.0); other forms as arguments.
        const std::chrono::milliseconds ms =
            py::isinstance<py::str>(text) ? lilcache::parse_duration(text.cast<std::string>())
                                          : *Duration(text, "duration");
        return static_cast<double>(ms.count()) / 1e3;
      },
      py::arg("text"),
      "Seconds in a duration: '500ms', '120s', '1h30m', '1d' (units ms s m h d w), a positive "
      "number of seconds or a datetime.timedelta (rounded up to whole milliseconds). "
      "InvalidArgumentError for a malformed string, ValueError for a number <= 0.");
  m.def(
      "list_caches",
      [](py::handle root) {
        std::string r = root.is_none() ? std::string() : py::str(root).cast<std::string>();
        py::gil_scoped_release unlocked;
        return lilcache::list_caches(r);
      },
      py::arg("root") = py::none(),
      "Names of the caches under root (None: the default root), sorted.");
  m.def(
      "resolve_root",
      [](py::handle root) {
        std::string r = root.is_none() ? std::string() : py::str(root).cast<std::string>();
        return lilcache::resolve_root(r);
      },
      py::arg("root") = py::none(),
      "The directory a cache opened with this root uses: root, else $LILCACHE_ROOT, else "
      "$XDG_CACHE_HOME/lilcache, else ~/.cache/lilcache.");
  m.attr("__version__") = std::string(lilcache::version());
}
