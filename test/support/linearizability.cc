#include "support/linearizability.h"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <set>
#include <unordered_set>

namespace lilcache::test::lin {
namespace {

// The set of linearized ops plus the register value: one search state.
struct State {
  std::vector<std::uint64_t> done;  // bit i: op i is linearized
  std::uint64_t value = kNone;
  bool operator==(const State& o) const { return value == o.value && done == o.done; }
};

struct StateHash {
  std::size_t operator()(const State& s) const {
    std::uint64_t h = s.value * 0x9e3779b97f4a7c15ull;
    for (std::uint64_t w : s.done) h = (h ^ w) * 0xff51afd7ed558ccdull, h ^= h >> 32;
    return static_cast<std::size_t>(h);
  }
};

// The register values op may leave when applied to `value`, or none if it
// cannot be linearized there (a get or pop whose result differs). An op that
// never returned may also have had no effect.
void Transitions(const Op& op, std::uint64_t value, std::vector<std::uint64_t>& out) {
  out.clear();
  switch (op.kind) {
    case Kind::kSet:
      out.push_back(op.value);
      break;
    case Kind::kGet:
      if (!op.returned || op.value == value) out.push_back(value);
      return;
    case Kind::kPop:
      if (!op.returned || op.value == value) out.push_back(kNone);
      break;
    case Kind::kPurge:
      out.push_back(kNone);
      break;
  }
  if (!op.returned && out.front() != value) out.push_back(value);  // or it had no effect
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
    s.value = kNone;
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
    std::vector<std::uint64_t> next;
    for (std::size_t i = 0; i < ops_.size() && ops_[i].invoke <= min_complete; ++i) {
      if (Done(s, i)) continue;
      Transitions(ops_[i], s.value, next);
      for (std::uint64_t v : next) {
        State t = s;
        t.done[i / 64] |= 1ull << (i % 64);
        t.value = v;
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
      if (victim.kind == Kind::kSet) {
        bool observed = false;
        for (const Op& o : cur) {
          if ((o.kind == Kind::kGet || o.kind == Kind::kPop) && o.returned &&
              o.value == victim.value) {
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
    }
    char who[32];
    std::snprintf(who, sizeof who, " p%u t%u ", op.process, op.thread);
    out +=
        std::string(times) + who + what + (op.returned ? "" : "   (its process died first)") + "\n";
  }
  return out;
}

}  // namespace lilcache::test::lin
