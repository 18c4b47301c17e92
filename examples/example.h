// Shared by the examples: where the example's cache lives, and how it checks
// its own outcome. Not part of lilcache.
#pragma once

#include <stdlib.h>

#include <cerrno>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

namespace example {

// The cache root of an example run: argv[1] if given, else a fresh temporary
// directory that is removed (with everything in it) when the Root is destroyed.
class Root {
 public:
  Root(int argc, char** argv) : owned_(argc < 2) {
    if (!owned_) {
      path_ = argv[1];
      return;
    }
    std::string dir = (std::filesystem::temp_directory_path() / "lilcache-example.XXXXXX").string();
    if (mkdtemp(dir.data()) == nullptr) {
      throw std::system_error(errno, std::generic_category(), "mkdtemp");
    }
    path_ = dir;
  }
  ~Root() {
    if (owned_) {
      std::error_code ignored;
      std::filesystem::remove_all(path_, ignored);
    }
  }
  Root(const Root&) = delete;
  Root& operator=(const Root&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }

 private:
  bool owned_;
  std::filesystem::path path_;
};

// Fails the example (main prints the message and exits 1) unless `ok`.
inline void check(bool ok, std::string_view what) {
  if (!ok) throw std::runtime_error("check failed: " + std::string(what));
}

}  // namespace example
