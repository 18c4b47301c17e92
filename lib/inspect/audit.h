// audit: a check that a cache's index agrees with its log, for tests and the
// torture (docs/concurrency.md, "The one invariant"; docs/testing.md).
//
// The rule "a slot only moves to a record with a higher seq" means that the
// live index and a replay of the log (recovery after a reboot or a checksum
// error: the newest-seq valid record of each key) give the same answer for
// every key. AuditIndex checks that on the live generation:
//  * every slot points inside the log, at a valid record of a key whose
//    hash carries the slot's tag, reachable by probing, one slot per key;
//  * every slot points at the newest-seq valid record of its key below the
//    tail; or else no newer record is a SET, and the slot's record is
//    invisible anyway (a tombstone, purged or expired): the newer ones are
//    tombstones of pops that lost their race to another pop, or found the
//    value gone, which a replay reads as "absent" as well;
//  * no key with a record in the log lacks a slot.
// The invariant is about seqs, not about visibility: an expired or purged
// value newer than the slot's tombstone is a violation (a replay would not
// agree on why the key is absent, and the rule was broken).
//
// Not for a cache in use: run it on a quiescent cache (no process writing;
// processes may have the cache open). A writer killed between appending
// its record and publishing it leaves a record newer than its key's slot
// (or a key without a slot): legitimate after a SIGKILL, reported all the
// same. Callers that kill writers compact first (a new generation holds only
// published records) and audit after a phase without kills.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lilcache {

class Env;

struct AuditReport {
  std::uint64_t generation = 0;
  std::uint64_t records = 0;            // valid records in the log below the tail
  std::uint64_t keys = 0;               // distinct keys among them
  std::uint64_t slots = 0;              // non-empty index slots
  std::uint64_t damaged = 0;            // damaged regions skipped in the log (holes, torn records)
  std::vector<std::string> violations;  // one message each (the first kMaxMessages, then a count)
  bool ok() const { return violations.empty(); }
  // Summary and violations, one per line.
  std::string Describe() const;
  static constexpr std::size_t kMaxMessages = 50;
};

// Audits the live generation of cache `name` under `root` ("" = the default
// root, as in Options). Files are opened read-only; no lock is taken. now_ms
// (0 = the wall clock) decides what is expired. Throws Error if the meta
// file or the live generation's files cannot be opened or are not lilcache
// files of this format version.
AuditReport AuditIndex(std::string_view root, std::string_view name, std::uint64_t now_ms = 0,
                       Env* env = nullptr);

}  // namespace lilcache
