#include "support/linearizability.h"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <set>
#include <unordered_set>

namespace lilcache::test::lin {
namespace {

// The register: its value, the write that stored it (1 + the index of that
// op in invoke order; 0: none) and the versions observed so far, bound to
// the writes they name (sorted by version).
struct Reg {
  std::uint64_t value = kNone;
  std::uint32_t writer = 0;
  std::vector<std::pair<std::uint64_t, std::uint32_t>> versions;
  // The value a purge removed (1 + the purge's index; 0: none), while
  // nothing has been written since: a conditional write overlapping that
  // purge may still decide on it (the purge caveat, linearizability.h).
  std::uint32_t purge = 0;
  std::uint32_t purged_writer = 0;
  std::uint64_t purged_value = kNone;
  bool operator==(const Reg& o) const {
    return value == o.value && writer == o.writer && versions == o.versions && purge == o.purge &&
           purged_writer == o.purged_writer && purged_value == o.purged_value;
  }
};

// The set of linearized ops plus the register: one search state.
struct State {
  std::vector<std::uint64_t> done;  // bit i: op i is linearized
  Reg reg;
  bool operator==(const State& o) const { return reg == o.reg && done == o.done; }
};

struct StateHash {
  std::size_t operator()(const State& s) const {
    std::uint64_t h = (s.reg.value ^ std::uint64_t{s.reg.writer} << 40 ^
                       std::uint64_t{s.reg.purge} << 20 ^ s.reg.purged_value) *
                      0x9e3779b97f4a7c15ull;
    for (std::uint64_t w : s.done) h = (h ^ w) * 0xff51afd7ed558ccdull, h ^= h >> 32;
    for (const auto& [v, w] : s.reg.versions) {
      h = (h ^ v ^ std::uint64_t{w} << 48) * 0xff51afd7ed558ccdull, h ^= h >> 32;
    }
    return static_cast<std::size_t>(h);
  }
};

// The write bound to `version` (0: none yet).
std::uint32_t WriterOf(const Reg& r, std::uint64_t version) {
  auto it = std::lower_bound(r.versions.begin(), r.versions.end(),
                             std::make_pair(version, std::uint32_t{0}));
  return it != r.versions.end() && it->first == version ? it->second : 0;
}

bool HasVersion(const Reg& r, std::uint32_t writer) {
  for (const auto& vw : r.versions) {
    if (vw.second == writer) return true;
  }
  return false;
}

// Whether `version` can be the version of the present value's write; binds
// it if neither was bound (one version names one write, and back).
bool Observe(Reg& r, std::uint64_t version) {
  std::uint32_t w = WriterOf(r, version);
  if (w != 0) return w == r.writer;
  if (r.writer == 0 || HasVersion(r, r.writer)) return false;
  r.versions.insert(std::lower_bound(r.versions.begin(), r.versions.end(),
                                     std::make_pair(version, std::uint32_t{0})),
                    {version, r.writer});
  return true;
}

Reg Stored(const Reg& r, std::uint64_t value, std::uint32_t writer) {
  Reg t = r;
  t.value = value;
  t.writer = value == kNone ? 0 : writer;
  t.purge = 0;  // a write since the purge: its value is out of reach
  t.purged_writer = 0;
  t.purged_value = kNone;
  return t;
}

bool IsConditional(Kind k) {
  return k == Kind::kAdd || k == Kind::kIncrement || k == Kind::kCompareAndSet ||
         k == Kind::kCompareAndErase || k == Kind::kTouch;
}

bool Overlap(const Op& a, const Op& b) { return a.invoke <= b.complete && b.invoke <= a.complete; }

// The registers a conditional write (the op of index i) may leave when it
// decides on register `d` (its read) and, if it writes nothing, leaves `r`.
void Decide(const Op& op, std::uint32_t self, const Reg& d, const Reg& r, std::vector<Reg>& out) {
  const bool present = d.value != kNone;
  const bool known = op.returned;
  switch (op.kind) {
    case Kind::kAdd:
      if (!present && (!known || op.ok)) out.push_back(Stored(d, op.value, self));
      if (present && (!known || !op.ok)) out.push_back(r);
      break;
    case Kind::kIncrement: {
      if (present && !IsInt(d.value)) {  // throws, no effect
        if (!known || !op.ok) out.push_back(r);
        break;
      }
      std::int64_t base = present ? IntOf(d.value) : op.initial;
      // Wraps modulo 2^63, as IntValue (no overflow in the tests).
      std::uint64_t next = IntValue(static_cast<std::int64_t>(
          static_cast<std::uint64_t>(base) + static_cast<std::uint64_t>(op.delta)));
      if (!known || (op.ok && op.value == next)) out.push_back(Stored(d, next, self));
      break;
    }
    case Kind::kCompareAndSet:
    case Kind::kCompareAndErase: {
      const std::uint64_t stored = op.kind == Kind::kCompareAndSet ? op.value : kNone;
      Reg t = d;
      // Succeeds if the version is that of the present write (binding it
      // if neither was bound yet).
      if (present && (!known || op.ok) && Observe(t, op.version)) {
        out.push_back(Stored(t, stored, self));
      }
      // Fails unless the version is known to be that of the present write.
      if ((!known || !op.ok) && !(present && WriterOf(d, op.version) == d.writer)) {
        out.push_back(r);
      }
      break;
    }
    case Kind::kTouch:
      if (present && (!known || op.ok)) out.push_back(Stored(d, d.value, self));
      if (!present && (!known || !op.ok)) out.push_back(r);
      break;
    default:
      break;
  }
}

// The registers op (the op of index i in invoke order) may leave when
// applied to `r`, or none if it cannot be linearized there (a read whose
// result differs, a conditional write whose outcome the register
// contradicts). An op that never returned may have had any outcome the
// register allows, or no effect at all.
void Transitions(const std::vector<Op>& ops, std::size_t i, const Reg& r, std::vector<Reg>& out) {
  out.clear();
  const Op& op = ops[i];
  const std::uint32_t self = static_cast<std::uint32_t>(i + 1);
  const bool present = r.value != kNone;
  const bool known = op.returned;
  switch (op.kind) {
    case Kind::kSet:
      out.push_back(Stored(r, op.value, self));
      break;
    case Kind::kGet:
      if (!known || op.value == r.value) out.push_back(r);
      return;
    case Kind::kPop:
      if (!known || op.value == r.value) out.push_back(Stored(r, kNone, 0));
      break;
    case Kind::kPurge: {
      Reg t = r;  // an absent key keeps what an earlier purge removed
      if (present) {
        t = Stored(r, kNone, 0);
        t.purge = self;
        t.purged_writer = r.writer;
        t.purged_value = r.value;
      }
      out.push_back(t);
      break;
    }
    case Kind::kGetVersioned: {
      if (known && op.value != r.value) return;
      Reg t = r;
      if (known && present && !Observe(t, op.version)) return;
      out.push_back(t);
      return;
    }
    default:
      Decide(op, self, r, r, out);
      // The purge caveat: overlapping the purge that removed a value, with
      // nothing written since, it may have decided on that value.
      if (IsConditional(op.kind) && r.purge != 0 && Overlap(op, ops[r.purge - 1])) {
        Reg d = r;
        d.value = r.purged_value;
        d.writer = r.purged_writer;
        std::vector<Reg> more;
        Decide(op, self, d, r, more);
        for (Reg& m : more) {
          if (std::find(out.begin(), out.end(), m) == out.end()) out.push_back(std::move(m));
        }
      }
      break;
  }
  if (!known && std::find(out.begin(), out.end(), r) == out.end()) {
    out.push_back(r);  // or it had no effect
  }
}

class Search {
 public:
  Search(const std::vector<Op>& ops, std::uint64_t max_states) : max_states_(max_states) {
    ops_ = ops;
    std::stable_sort(ops_.begin(), ops_.end(),
                     [](const Op& a, const Op& b) { return a.invoke < b.invoke; });
  }

  bool Run() {
    State s;
    s.done.assign((ops_.size() + 63) / 64, 0);
    return Visit(s, 0);
  }
  std::uint64_t states() const { return visited_.size(); }
  bool gave_up() const { return gave_up_; }

 private:
  bool Visit(const State& s, std::size_t n_done) {
    if (n_done == ops_.size()) return true;
    if (gave_up_) return true;
    // An op can be linearized next iff no pending op completed before it was
    // invoked (equal times count as concurrent).
    std::uint64_t min_complete = kNever;
    for (std::size_t i = 0; i < ops_.size(); ++i) {
      if (!Done(s, i)) min_complete = std::min(min_complete, ops_[i].complete);
    }
    std::vector<Reg> next;
    for (std::size_t i = 0; i < ops_.size() && ops_[i].invoke <= min_complete; ++i) {
      if (Done(s, i)) continue;
      Transitions(ops_, i, s.reg, next);
      for (Reg& reg : next) {
        State t;
        t.done = s.done;
        t.done[i / 64] |= 1ull << (i % 64);
        t.reg = std::move(reg);
        if (!visited_.insert(t).second) continue;  // explored already (Lowe)
        if (visited_.size() > max_states_) {
          gave_up_ = true;
          return true;
        }
        if (Visit(t, n_done + 1)) return true;
      }
    }
    return false;
  }
  static bool Done(const State& s, std::size_t i) { return (s.done[i / 64] >> (i % 64)) & 1; }

  std::vector<Op> ops_;
  std::uint64_t max_states_;
  std::unordered_set<State, StateHash> visited_;
  bool gave_up_ = false;
};

std::string ValueName(std::uint64_t v) {
  if (v == kNone) return "none";
  if (IsInt(v)) return std::to_string(IntOf(v));
  // Ids of the process suites: writer << 32 | seq.
  if (v >> 32 != 0) return "v" + std::to_string(v >> 32) + "." + std::to_string(v & 0xffffffffu);
  return "#" + std::to_string(v);
}

std::string KeyName(const std::string& key) {
  std::string out;
  for (unsigned char c : key) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

}  // namespace

bool CheckRegister(const std::vector<Op>& ops, const Options& options, std::uint64_t* states,
                   bool* gave_up) {
  Search search(ops, options.max_states);
  bool ok = search.Run();
  if (states != nullptr) *states = search.states();
  if (gave_up != nullptr) *gave_up = search.gave_up();
  return ok;
}

std::vector<Op> Minimize(const std::vector<Op>& ops, const Options& options) {
  std::vector<Op> cur = ops;
  std::stable_sort(cur.begin(), cur.end(),
                   [](const Op& a, const Op& b) { return a.invoke < b.invoke; });
  auto fails = [&](const std::vector<Op>& h) {
    bool gave_up = false;
    bool ok = CheckRegister(h, options, nullptr, &gave_up);
    return !ok && !gave_up;
  };
  if (!fails(cur)) return cur;
  bool progress = true;
  while (progress) {
    progress = false;
    // Latest first: the violation is usually found late in the history.
    for (std::size_t j = cur.size(); j-- > 0;) {
      const Op& victim = cur[j];
      if (victim.kind == Kind::kSet ||
          ((victim.kind == Kind::kAdd || victim.kind == Kind::kCompareAndSet ||
            victim.kind == Kind::kIncrement) &&
           victim.ok && victim.returned)) {
        bool observed = false;
        for (const Op& o : cur) {
          if ((o.kind == Kind::kGet || o.kind == Kind::kPop || o.kind == Kind::kGetVersioned) &&
              o.returned && o.value == victim.value) {
            observed = true;
            break;
          }
        }
        if (observed) continue;  // keep the origin of every value returned
      }
      std::vector<Op> shorter = cur;
      shorter.erase(shorter.begin() + static_cast<std::ptrdiff_t>(j));
      if (fails(shorter)) {
        cur = std::move(shorter);
        progress = true;
      }
    }
  }
  return cur;
}

Result Check(const std::vector<Op>& history, const Options& options) {
  Result r;
  std::map<std::string, std::vector<Op>> by_key;
  std::vector<Op> purges;
  for (const Op& op : history) {
    if (op.kind == Kind::kPurge) {
      purges.push_back(op);
    } else {
      by_key[op.key].push_back(op);
    }
  }
  for (auto& [key, ops] : by_key) {
    ops.insert(ops.end(), purges.begin(), purges.end());
    ++r.keys;
    r.ops += ops.size();
    std::uint64_t states = 0;
    bool gave_up = false;
    bool ok = CheckRegister(ops, options, &states, &gave_up);
    r.states += states;
    r.gave_up |= gave_up;
    if (!ok && r.linearizable) {
      r.linearizable = false;
      r.key = key;
      r.history = ops;
      std::stable_sort(r.history.begin(), r.history.end(),
                       [](const Op& a, const Op& b) { return a.invoke < b.invoke; });
      if (options.minimize) r.minimal = Minimize(ops, options);
    }
  }
  return r;
}

std::string Format(const std::vector<Op>& ops) {
  std::vector<Op> sorted = ops;
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const Op& a, const Op& b) { return a.invoke < b.invoke; });
  std::uint64_t t0 = sorted.empty() ? 0 : sorted.front().invoke;
  std::string out;
  for (const Op& op : sorted) {
    char times[64];
    double inv = static_cast<double>(op.invoke - t0) / 1000.0;
    if (op.complete == kNever) {
      std::snprintf(times, sizeof times, "[%10.1f ..      never]", inv);
    } else {
      std::snprintf(times, sizeof times, "[%10.1f .. %10.1f]", inv,
                    static_cast<double>(op.complete - t0) / 1000.0);
    }
    std::string what;
    switch (op.kind) {
      case Kind::kSet:
        what = "set(" + KeyName(op.key) + ", " + ValueName(op.value) + ")";
        break;
      case Kind::kGet:
        what = "get(" + KeyName(op.key) + ") -> " + (op.returned ? ValueName(op.value) : "?");
        break;
      case Kind::kPop:
        what = "pop(" + KeyName(op.key) + ") -> " + (op.returned ? ValueName(op.value) : "?");
        break;
      case Kind::kPurge:
        what = "purge()";
        break;
      case Kind::kAdd:
        what = "add(" + KeyName(op.key) + ", " + ValueName(op.value) + ") -> " +
               (op.returned ? (op.ok ? "true" : "false") : "?");
        break;
      case Kind::kIncrement:
        what = "increment(" + KeyName(op.key) + ", " + std::to_string(op.delta) + ", " +
               std::to_string(op.initial) + ") -> " +
               (!op.returned ? "?"
                : op.ok      ? ValueName(op.value)
                             : "not an integer");
        break;
      case Kind::kGetVersioned:
        what = "get_versioned(" + KeyName(op.key) + ") -> " +
               (!op.returned        ? "?"
                : op.value == kNone ? "none"
                                    : ValueName(op.value) + " @" + std::to_string(op.version));
        break;
      case Kind::kCompareAndSet:
        what = "compare_and_set(" + KeyName(op.key) + ", @" + std::to_string(op.version) + ", " +
               ValueName(op.value) + ") -> " + (op.returned ? (op.ok ? "true" : "false") : "?");
        break;
      case Kind::kCompareAndErase:
        what = "compare_and_erase(" + KeyName(op.key) + ", @" + std::to_string(op.version) +
               ") -> " + (op.returned ? (op.ok ? "true" : "false") : "?");
        break;
      case Kind::kTouch:
        what =
            "touch(" + KeyName(op.key) + ") -> " + (op.returned ? (op.ok ? "true" : "false") : "?");
        break;
    }
    char who[32];
    std::snprintf(who, sizeof who, " p%u t%u ", op.process, op.thread);
    out +=
        std::string(times) + who + what + (op.returned ? "" : "   (its process died first)") + "\n";
  }
  return out;
}

}  // namespace lilcache::test::lin
