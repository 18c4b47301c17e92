// Writes the seed corpora of the fuzz targets: test/fuzz/corpus/<target>/.
//
//   fuzz_seeds DIR    (DIR = test/fuzz/corpus; existing seeds are overwritten)
//
// Seeds are small, valid (or nearly valid) inputs in each target's input
// format, so that the fuzzer starts from the interesting paths: records that
// pass their checksum, a log that replays, an index that matches its log.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "engine/data_file.h"
#include "engine/index.h"
#include "engine/meta.h"
#include "fuzz_util.h"

using namespace lilcache;
using fuzz::Record;

namespace {

std::filesystem::path g_dir;

void Seed(const std::string& target, const std::string& name, const std::string& bytes) {
  std::filesystem::create_directories(g_dir / target);
  std::ofstream out(g_dir / target / name, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string U64(std::uint64_t v) { return std::string(reinterpret_cast<const char*>(&v), 8); }

// A file in the compact form of fuzz_recovery and fuzz_index: the header
// fields, then the bytes from offset 4096 with their trailing zeros cut.
std::string Compact(const std::string& file, std::size_t fields) {
  std::string body = file.substr(kHeaderSize);
  std::size_t last = body.find_last_not_of('\0');
  body.resize(last == std::string::npos ? 0 : last + 1);
  return file.substr(0, fields) + body;
}

// A data file in compact form whose capacity is the size of the file it
// expands to (a capacity beyond the file means "truncated": a full replay).
std::string CompactData(const std::string& file) {
  std::string c = Compact(file, 96);
  std::uint64_t cap = kHeaderSize + (c.size() - 96);
  std::memcpy(c.data() + offsetof(DataHeader, capacity), &cap, 8);
  return c;
}

std::string SomeRecords() {
  return Record(false, "a", "b", 1) + Record(false, "key", "value", 2) +
         Record(false, "a", "newer a", 3) + Record(true, "key", "", 4) +
         Record(false, "ttl", "expired", 5, fuzz::kNowMs - 1) +
         Record(false, "ttl2", "alive", 6, fuzz::kNowMs + 1000) +
         Record(false, std::string("bin\0key", 7), std::string(100, '\0'), 7);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_seeds DIR\n");
    return 2;
  }
  g_dir = argv[1];
  const std::string records = SomeRecords();

  // fuzz_record: flag byte (bit 0: fix checksums), then log bytes.
  Seed("fuzz_record", "records", std::string(1, '\0') + records);
  Seed("fuzz_record", "records-fix", std::string(1, '\1') + records);
  std::string torn = records;
  torn[60] ^= 0x20;
  Seed("fuzz_record", "torn", std::string(1, '\0') + torn);
  Seed("fuzz_record", "hole",
       std::string(1, '\0') + Record(false, "x", "y", 1) + std::string(24, '\0') +
           Record(false, "z", "w", 2));

  // fuzz_recovery: flags, next_seq, purge_seq, data file (compact form with bit 2).
  const std::string data = fuzz::MakeData(1, records);
  const std::string params = U64(8) + U64(0);
  Seed("fuzz_recovery", "replay", std::string(1, '\x04') + params + CompactData(data));
  Seed("fuzz_recovery", "fast-path", std::string(1, '\x05') + params + CompactData(data));
  Seed("fuzz_recovery", "replay-purged",
       std::string(1, '\x04') + U64(8) + U64(3) + CompactData(data));
  std::string damaged = CompactData(data);
  damaged[96 + 50] ^= 1;
  Seed("fuzz_recovery", "damaged-fast-path", std::string(1, '\x05') + params + damaged);
  std::string cut = CompactData(data);
  cut.resize(cut.size() - 20);
  std::uint64_t cap = 1 << 20;  // says 1 MiB: the file is shorter (truncated)
  std::memcpy(cut.data() + offsetof(DataHeader, capacity), &cap, 8);
  Seed("fuzz_recovery", "truncated", std::string(1, '\x05') + params + cut);
  Seed("fuzz_recovery", "raw-file", std::string(1, '\x01') + params + data);

  // fuzz_index: flags, index file (compact form: 72 header bytes, then slots).
  const fuzz::IndexFixture& fx = fuzz::IndexData();
  auto compact_index = [](const std::string& index) { return Compact(index, 72); };
  Seed("fuzz_index", "index", std::string(1, '\0') + compact_index(fuzz::MakeIndex(1, fx.data)));
  Seed("fuzz_index", "index-2048",
       std::string(1, '\0') + compact_index(fuzz::MakeIndex(1, fx.data, 2048)));
  // Not a power of two (format 7): homes scaled by multiply-shift, probes wrap at 1,536.
  Seed("fuzz_index", "index-1536",
       std::string(1, '\0') + compact_index(fuzz::MakeIndex(1, fx.data, 1536)));
  Seed("fuzz_index", "empty", std::string(1, '\0') + compact_index(fuzz::MakeIndex(1, "")));
  Seed("fuzz_index", "torn-tail",
       std::string(1, '\x08') + compact_index(fuzz::MakeIndex(1, fx.data)));
  Seed("fuzz_index", "replay", std::string(1, '\x04') + compact_index(fuzz::MakeIndex(1, fx.data)));

  // fuzz_http: flags (bit 0: token "tok" required; bit 1: small limits; bit 2:
  // an exhausted memory budget), then what a client sends.
  auto req = [](const std::string& method, const std::string& target, const std::string& body = "",
                const std::string& fields = "") {
    std::string r = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + fields;
    if (!body.empty() || method == "PUT")
      r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    return r + "\r\n" + body;
  };
  Seed("fuzz_http", "set-get",
       std::string(1, '\0') + req("GET", "/set?key=a&value=b&ttl=5s") + req("GET", "/get?key=a") +
           req("GET", "/contains?key=a") + req("GET", "/pop?key=a") + req("GET", "/delete?key=a"));
  Seed("fuzz_http", "keys",
       std::string(1, '\0') + req("PUT", "/keys/k%00x?ttl=1h", "value") +
           req("GET", "/keys/k%00x") + req("GET", "/keys?prefix=k&limit=5") +
           req("DELETE", "/keys/k%00x") + req("GET", "/stats") + req("POST", "/purge") +
           req("DELETE", "/keys") + req("GET", "/health"));
  // Issue 17's conventions: 201 then 204, HEAD (with and without a body to
  // come), pages of /keys in base64, problem+json errors.
  Seed("fuzz_http", "conventions",
       std::string(1, '\0') + req("PUT", "/keys/%FFb", "HTTP/1.1 200 OK\r\n") +
           req("GET", "/keys/%FFb") + req("PUT", "/keys/%FFb", "v") + req("HEAD", "/keys/%FFb") +
           req("HEAD", "/get?key=a") + req("HEAD", "/pop?key=a") +
           req("GET", "/keys?encoding=base64&limit=1&after=YQ%3D%3D") +
           req("GET", "/get?key=%2F2I%3D&encoding=base64") +
           req("GET", "/get?key=", "", "Accept: application/json\r\n") +
           req("GET", "/keys/x/ttl", "", "Accept: application/problem+json;q=0.9, */*;q=0.1\r\n"));
  Seed("fuzz_http", "auth",
       std::string(1, '\1') + req("GET", "/health", "", "Authorization: Bearer tok\r\n") +
           req("GET", "/health", "", "Authorization: Bearer nope\r\n") + req("GET", "/health"));
  Seed("fuzz_http", "continue-small-limits",
       std::string(1, '\2') +
           req("PUT", "/keys/big", std::string(100, 'v'), "Expect: 100-continue\r\n"));
  Seed("fuzz_http", "chunked-close",
       std::string(1, '\0') +
           "PUT /keys/c HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
           "3\r\nabc\r\n0\r\n\r\n" +
           req("GET", "/keys/c", "", "Connection: close\r\n") + req("GET", "/health"));
  Seed("fuzz_http", "errors",
       std::string(1, '\0') + req("HEAD", "/get?key=a") + req("POST", "/get?key=a") +
           req("GET", "/nope") + req("GET", "/get") + req("GET", "/get?key=a&key=b") +
           "GET /get?key=a HTTP/1.0\r\n\r\n" + "BAD REQUEST\r\n\r\n");
  // The server allows the origin http://app.example and the Host cache.lan.
  auto raw = [](const std::string& target, const std::string& fields) {
    return "GET " + target + " HTTP/1.1\r\n" + fields + "\r\n";
  };
  Seed("fuzz_http", "browser",
       std::string(1, '\0') +
           req("OPTIONS", "/keys/a", "",
               "Origin: http://app.example\r\nAccess-Control-Request-Method: PUT\r\n"
               "Access-Control-Request-Headers: authorization\r\n"
               "Access-Control-Request-Private-Network: true\r\n") +
           req("PUT", "/keys/a", "v",
               "Origin: http://APP.example:80\r\nSec-Fetch-Site: cross-site\r\n") +
           req("OPTIONS", "/keys/a", "",
               "Origin: https://evil.example\r\nAccess-Control-Request-Method: PUT\r\n") +
           req("POST", "/purge", "x=1",
               "Origin: https://evil.example\r\nSec-Fetch-Site: cross-site\r\n"
               "Content-Type: application/x-www-form-urlencoded\r\n") +
           req("GET", "/set?key=a&value=b", "", "Sec-Fetch-Site: cross-site\r\n") +
           req("GET", "/get?key=a", "", "Sec-Fetch-Site: same-site\r\nOrigin: null\r\n") +
           raw("/get?key=a",
               "Host: rebind.evil.example:5001\r\n"
               "Origin: http://rebind.evil.example:5001\r\n") +
           raw("/get?key=a", "Host: cache.lan:5001\r\n") +
           raw("/get?key=a", "Host: [::1]:5001\r\n") + raw("/get?key=a", "") +
           raw("/get?key=a", "Host: a\r\nHost: b\r\n"));
  Seed("fuzz_http", "smuggling",
       std::string(1, '\0') +
           "PUT /keys/g HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip\r\n\r\n" +
           req("POST", "/purge"));
  Seed("fuzz_http", "smuggling-codings",
       std::string(1, '\0') +
           "PUT /keys/g HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip, chunked\r\n"
           "\r\n3\r\nabc\r\n0\r\n\r\n" +
           req("GET", "/health"));
  Seed("fuzz_http", "smuggling-length",
       std::string(1, '\0') +
           "PUT /keys/g HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip\r\n"
           "Content-Length: 3\r\n\r\nabc" +
           "PUT /keys/h HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
  const std::string chunked =
      "PUT /keys/c HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  Seed("fuzz_http", "chunk-extension-long",
       std::string(1, '\2') + chunked + "1;" + std::string(300, 'a') + "\r\nx\r\n0\r\n\r\n");
  Seed("fuzz_http", "trailer-long",
       std::string(1, '\2') + chunked + "1;e=v\r\nx\r\n0\r\nX-T: " + std::string(300, 't') +
           "\r\n\r\n");
  Seed("fuzz_http", "budget",
       std::string(1, '\4') + req("GET", "/pop?key=a") + req("PUT", "/keys/s", "small") +
           "PUT /keys/b HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 70000\r\n\r\n");
  Seed("fuzz_http", "budget-chunked",
       std::string(1, '\4') + chunked + "10000\r\n" + std::string(65536, 'c') + "\r\n" + "10\r\n" +
           std::string(16, 'c') + "\r\n0\r\n\r\n");

  // fuzz_parsers: the raw text.
  int i = 0;
  for (const char* s : {"500ms", "120s", "1h30m", "1w2d3h4m5s6ms", "9223372036854775807ms",
                        "15250284452w", "0s", "12x", "-1s", "my-cache.v1", "..", "a_b-C.9"}) {
    Seed("fuzz_parsers", "text" + std::to_string(i++), s);
  }
  return 0;
}
