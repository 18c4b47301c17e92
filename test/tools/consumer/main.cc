// A program outside the lilcache project, built against an installed
// lilcache by test/install_test.sh (with g++ and pkg-config, and as a CMake
// project). Usage: consumer ROOT VERSION. Exits 0 if the library works and
// reports VERSION.
#include <lilcache/lilcache.h>

#include <cstdio>
#include <stdexcept>
#include <string>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: consumer ROOT VERSION\n");
    return 2;
  }
  try {
    auto cache = lilcache::Cache::open("consumer", {.root = argv[1]});
    cache.set("a", "b");
    if (cache.get("a") != "b") throw std::runtime_error("get('a') is not 'b'");
    if (cache.pop("a") != "b" || cache.contains("a")) throw std::runtime_error("pop('a') failed");
    // The library's Error, with its kind, is caught across the shared library.
    bool refused = false;
    try {
      cache.set("", "v");
    } catch (const lilcache::Error& e) {
      refused = e.code() == lilcache::ErrorCode::invalid_argument;
    }
    if (!refused) throw std::runtime_error("an empty key is not an invalid_argument Error");
    cache.set("from-consumer", "hello");  // the installed `lilcache` tool reads it
    if (lilcache::version() != argv[2]) {
      throw std::runtime_error("version() is " + std::string(lilcache::version()) + ", not " +
                               argv[2]);
    }
    std::printf("consumer: lilcache %s works\n", std::string(lilcache::version()).c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "consumer: %s\n", e.what());
    return 1;
  }
}
