#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "lilcache/env.h"
#include "lilcache/lilcache.h"
#include "support/test_util.h"
#include "util/names.h"

using lilcache::Error;
using lilcache::validate_name;

TEST_CASE("cache names of letters, digits, _ - . are accepted") {
  CHECK_NOTHROW(validate_name("default"));
  CHECK_NOTHROW(validate_name("foo_cache"));
  CHECK_NOTHROW(validate_name("a-b.c_9"));
  CHECK_NOTHROW(validate_name(std::string(lilcache::kMaxNameBytes, 'x')));
}

TEST_CASE("cache names with a slash, dot-dot, odd bytes or too long are refused") {
  for (std::string bad : {std::string(""), std::string("."), std::string(".."), std::string("a/b"),
                          std::string("../x"), std::string("a b"), std::string("a\0b", 3),
                          std::string("é"), std::string(lilcache::kMaxNameBytes + 1, 'x')}) {
    CAPTURE(bad);
    CHECK_THROWS_AS(validate_name(bad), Error);
  }
}

TEST_CASE("a bad name with NUL or control bytes is quoted escaped, so the message is whole") {
  // Found by test/fuzz/fuzz_parsers (see quote.h).
  CHECK_THROWS_WITH_AS(validate_name(std::string("a\0b\x1b", 4)),
                       "invalid cache name \"a\\x00b\\x1b\": only letters, digits, '_', '-' and "
                       "'.' are allowed",
                       Error);
}

TEST_CASE("the root defaults to LILCACHE_ROOT, then XDG_CACHE_HOME, then HOME") {
  setenv("LILCACHE_ROOT", "/r1", 1);
  CHECK(lilcache::ResolveRoot("") == "/r1");
  CHECK(lilcache::ResolveRoot("/given") == "/given");
  unsetenv("LILCACHE_ROOT");
  setenv("XDG_CACHE_HOME", "/xdg", 1);
  CHECK(lilcache::ResolveRoot("") == "/xdg/lilcache");
  unsetenv("XDG_CACHE_HOME");
  setenv("HOME", "/home/u", 1);
  CHECK(lilcache::ResolveRoot("") == "/home/u/.cache/lilcache");
}

TEST_CASE("a missing root is created mode 0700 with its parents, and files 0600") {
  lilcache::test::TempDir dir;
  std::string root = dir.path() + "/a/b/root";
  auto c = lilcache::Cache::open("perm", {.root = root});
  c.set("password", "hello123");
  struct stat st;
  REQUIRE(stat(root.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  for (const char* f : {"/perm.meta", "/perm.1.data", "/perm.1.index", "/perm.log"}) {
    CAPTURE(f);
    REQUIRE(stat((root + f).c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
  }
}

TEST_CASE("a root that is a file is refused with an Error") {
  lilcache::test::TempDir dir;
  std::string file = dir.file("plain");
  REQUIRE(std::system(("touch " + file).c_str()) == 0);
  CHECK_ERROR_CODE(lilcache::Cache::open("x", {.root = file}),
                   lilcache::ErrorCode::invalid_argument);
}

TEST_CASE("list_caches names every cache under a root, sorted, and nothing else") {
  lilcache::test::TempDir dir;
  lilcache::Cache::open("zeta", {.root = dir.path()});
  lilcache::Cache::open("alpha", {.root = dir.path()});
  // Not caches: another file, and a .meta file whose name is not a cache name.
  for (const char* f : {"notes.txt", "bad name.meta"}) {
    std::ofstream(dir.file(f)) << "x";
    REQUIRE(std::filesystem::exists(dir.file(f)));
  }
  CHECK(lilcache::list_caches(dir.path()) == std::vector<std::string>{"alpha", "zeta"});
  CHECK_THROWS_AS(lilcache::list_caches(dir.file("missing")), Error);
}

TEST_CASE("resolve_root is the public name of the root resolution Options::root gets") {
  setenv("LILCACHE_ROOT", "/r1", 1);
  CHECK(lilcache::resolve_root() == "/r1");
  CHECK(lilcache::resolve_root("/given") == "/given");
  unsetenv("LILCACHE_ROOT");
}

TEST_CASE("cache_exists says whether NAME.meta is there, and creates nothing") {
  lilcache::test::TempDir dir;
  CHECK(!lilcache::cache_exists("c", dir.path()));
  CHECK(!lilcache::cache_exists("c", dir.file("missing")));  // no root: no cache
  CHECK(!std::filesystem::exists(dir.file("missing")));
  CHECK(std::filesystem::is_empty(dir.path()));
  lilcache::Cache::open("c", {.root = dir.path()});
  CHECK(lilcache::cache_exists("c", dir.path()));
  CHECK(!lilcache::cache_exists("d", dir.path()));
  CHECK_THROWS_AS(lilcache::cache_exists("a/b", dir.path()), Error);  // an invalid name
  std::ofstream(dir.file("file")) << "x";
  CHECK_THROWS_AS(lilcache::cache_exists("c", dir.file("file")), Error);  // root not a directory
}

TEST_CASE("CacheExists is true once NAME.meta is there, even unreadable, and false before") {
  lilcache::test::TempDir dir;
  lilcache::Env* env = lilcache::Env::Default();
  const lilcache::CachePaths paths{dir.path(), "c"};
  CHECK_FALSE(lilcache::CacheExists(env, paths));
  lilcache::Cache::open("c", {.root = dir.path()});
  CHECK(lilcache::CacheExists(env, paths));
  REQUIRE(::chmod(paths.meta().c_str(), 0) == 0);
  CHECK(lilcache::CacheExists(env, paths));
  CHECK_FALSE(lilcache::CacheExists(env, {dir.path(), "other"}));
}

TEST_CASE("CacheExists throws Error when the root cannot be searched") {
  if (::geteuid() == 0) return;  // root searches anything
  lilcache::test::TempDir dir;
  const std::string root = dir.file("r");
  lilcache::Cache::open("c", {.root = root});
  REQUIRE(::chmod(root.c_str(), 0600) == 0);  // no search (x) permission
  CHECK_THROWS_AS(lilcache::CacheExists(lilcache::Env::Default(), {root, "c"}), Error);
  REQUIRE(::chmod(root.c_str(), 0700) == 0);
}

TEST_CASE("ParseCacheFile tells a cache's files apart, reading the name from its end") {
  using Kind = lilcache::CacheFile::Kind;
  auto f = lilcache::ParseCacheFile("a.b.meta");
  REQUIRE(f);
  CHECK(f->cache == "a.b");
  CHECK(f->kind == Kind::kMeta);
  f = lilcache::ParseCacheFile("c.log");
  REQUIRE(f);
  CHECK(f->kind == Kind::kTextLog);
  f = lilcache::ParseCacheFile("x.1.12.data");  // cache "x.1", generation 12
  REQUIRE(f);
  CHECK(f->cache == "x.1");
  CHECK(f->kind == Kind::kData);
  CHECK(f->generation == 12);
  CHECK_FALSE(f->tmp);
  f = lilcache::ParseCacheFile("x.3.index.tmp");
  REQUIRE(f);
  CHECK(f->cache == "x");
  CHECK(f->kind == Kind::kIndex);
  CHECK(f->generation == 3);
  CHECK(f->tmp);
  for (const char* other : {"notes.txt", "x.data", "x.g.data", "x.1.meta.tmp", ".3.data",
                            "bad name.meta", "x.1.log.tmp", "x.-1.data"}) {
    CAPTURE(other);
    CHECK_FALSE(lilcache::ParseCacheFile(other));
  }
}

TEST_CASE("Env::ListDirectory names the entries but . and .., and fails with errno for none") {
  lilcache::test::TempDir dir;
  std::ofstream(dir.file("a")) << "x";
  std::filesystem::create_directory(dir.file("d"));
  std::vector<std::string> names{"left over"};
  REQUIRE(lilcache::Env::Default()->ListDirectory(dir.path().c_str(), &names) == 0);
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"a", "d"});
  errno = 0;
  CHECK(lilcache::Env::Default()->ListDirectory(dir.file("missing").c_str(), &names) == -1);
  CHECK(errno == ENOENT);
}

namespace {
// Fails every directory listing while `fail` is set.
class NoListing : public lilcache::Env {
 public:
  bool fail = false;
  int ListDirectory(const char* path, std::vector<std::string>* names) override {
    if (!fail) return Env::ListDirectory(path, names);
    errno = EIO;
    return -1;
  }
};
}  // namespace

TEST_CASE(
    "a compaction that cannot list the root switches anyway; the next one removes stale files") {
  lilcache::test::TempDir dir;
  NoListing env;
  auto cache = lilcache::Cache::open("c", {.root = dir.path(), .env = &env});
  cache.set("k", "v");
  const std::string stale = dir.file("c.7.data.tmp");  // a crashed compactor's
  std::ofstream(stale) << "x";
  env.fail = true;
  CHECK(cache.compact().compacted);
  CHECK(std::filesystem::exists(stale));
  CHECK(std::filesystem::exists(dir.file("c.1.data")));  // the old generation's, too
  env.fail = false;
  CHECK(cache.compact().compacted);
  CHECK_FALSE(std::filesystem::exists(stale));
  CHECK_FALSE(std::filesystem::exists(dir.file("c.1.data")));
  CHECK_FALSE(std::filesystem::exists(dir.file("c.2.data")));
  CHECK(cache.get("k") == "v");
}
