// lilcache._lilcache: the extension module under the Python package
// lilcache (python/lilcache/__init__.py). It binds the public C++ API only
// (include/lilcache/).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

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
// called from any thread (a Python signal handler in the main thread).
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
    py::gil_scoped_release unlocked;
    server_->run();
  }
  void Stop() { server_->stop(); }
  std::string url() const { return server_->url(); }
  std::uint16_t port() const { return server_->port(); }

 private:
  std::shared_ptr<Cache> cache_;
  std::unique_ptr<Server> server_;
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
      .def_property_readonly("url", &PyServer::url)
      .def_property_readonly("port", &PyServer::port);

  m.def(
      "parse_duration",
      [](py::handle text) {
        return static_cast<double>(Duration(text, "duration")->count()) / 1e3;
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
