// Seed requirement 7: where the cache lives.
//
//   lilcache.init('foo_cache', root='/home/user/secured-directory')
//   lilcache.set('password', 'hello123')
//
// Options::root is the directory holding the cache's files. lilcache creates
// it (with its parents) mode 0700 and its files mode 0600: only the owner can
// read them. Without a root: $LILCACHE_ROOT, else $XDG_CACHE_HOME/lilcache,
// else $HOME/.cache/lilcache.
//
// Usage: 07_root [DIR]   (uses DIR/secured-directory; default DIR: a temporary directory)
#include <lilcache/lilcache.h>

#include <cstdio>
#include <filesystem>

#include "example.h"

namespace fs = std::filesystem;

int main(int argc, char** argv) try {
  const example::Root base(argc, argv);
  const fs::path secured = base.path() / "secured-directory";  // does not exist yet

  lilcache::Options options;
  options.root = secured.string();
  lilcache::init("foo_cache", options);
  lilcache::set("password", "hello123");
  example::check(lilcache::get("password") == "hello123", "password is stored");

  const fs::perms dir_mode = fs::status(secured).permissions() & fs::perms::all;
  example::check(dir_mode == fs::perms::owner_all, "the root directory is mode 0700");
  std::printf("%s: mode %04o\n", secured.c_str(), static_cast<unsigned>(dir_mode));

  for (const fs::directory_entry& file : fs::directory_iterator(secured)) {
    if (!file.is_regular_file()) continue;
    const fs::perms mode = file.status().permissions() & fs::perms::all;
    std::printf("  %s: mode %04o\n", file.path().filename().c_str(), static_cast<unsigned>(mode));
    example::check(mode == (fs::perms::owner_read | fs::perms::owner_write),
                   "every file in the root is mode 0600");
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "07_root: %s\n", e.what());
  return 1;
}
