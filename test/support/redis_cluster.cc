// redis_cluster: see redis_cluster.h.
#include "support/redis_cluster.h"

#include <hiredis/hiredis.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "cluster/slot.h"
#include "support/test_util.h"

namespace lilcache::test {
namespace {

std::string Env(const char* name, const char* hint) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') {
    throw std::runtime_error(std::string(name) + " is not set: " + hint);
  }
  return value;
}

constexpr const char* kHint =
    "run this suite through test/cluster/with_cluster.sh (meson test --suite cluster)";

// Ports this process stopped or killed: not asked anything.
std::mutex g_mu;
std::set<int> g_stopped, g_killed;

bool Skipped(int port) {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_stopped.count(port) > 0 || g_killed.count(port) > 0;
}

cluster::Reply Convert(const redisReply* r) {
  cluster::Reply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = cluster::Reply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = cluster::Reply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = cluster::Reply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = cluster::Reply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = cluster::Reply::Type::kArray;
      for (std::size_t i = 0; i < r->elements; ++i) out.elements.push_back(Convert(r->element[i]));
      break;
    default:
      break;
  }
  return out;
}

std::vector<std::pair<int, pid_t>> NodesFile() {
  const std::string path = Env("LILCACHE_TEST_CLUSTER_DIR", kHint) + "/nodes";
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::vector<std::pair<int, pid_t>> nodes;
  int port = 0;
  pid_t pid = 0;
  while (in >> port >> pid) nodes.emplace_back(port, pid);
  if (nodes.size() < 6) throw std::runtime_error(path + ": fewer than 6 nodes");
  nodes.resize(6);  // a 7th line is with_cluster.sh --single's plain server
  return nodes;
}

}  // namespace

std::string ClusterUrl() { return Env("LILCACHE_TEST_CLUSTER", kHint); }
std::string SingleRedisUrl() {
  return Env("LILCACHE_TEST_REDIS", "run this suite through test/cluster/with_cluster.sh --single");
}

bool RedisNode::serves(int slot) const {
  return std::any_of(slots.begin(), slots.end(),
                     [&](const auto& r) { return slot >= r.first && slot <= r.second; });
}

cluster::Reply NodeCommand(int port, const std::vector<std::string>& args) {
  const timeval tv{2, 0};
  redisContext* c = redisConnectWithTimeout("127.0.0.1", port, tv);
  if (c == nullptr || c->err != 0) {
    const std::string why = c != nullptr ? c->errstr : "out of memory";
    redisFree(c);
    throw std::runtime_error("cannot connect to 127.0.0.1:" + std::to_string(port) + ": " + why);
  }
  redisSetTimeout(c, tv);
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  for (const std::string& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* r = static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()));
  if (r == nullptr) {
    const std::string why = c->errstr;
    redisFree(c);
    throw std::runtime_error("127.0.0.1:" + std::to_string(port) + ": " + args.front() + ": " +
                             why);
  }
  cluster::Reply reply = Convert(r);
  freeReplyObject(r);
  redisFree(c);
  return reply;
}

void AllNodesCommand(const std::vector<std::string>& args) {
  for (const auto& [port, pid] : NodesFile()) {
    if (Skipped(port)) continue;
    const cluster::Reply r = NodeCommand(port, args);
    if (r.is_error()) {
      throw std::runtime_error("127.0.0.1:" + std::to_string(port) + ": " + args.front() + ": " +
                               r.str);
    }
  }
}

std::vector<RedisNode> ClusterNodes() {
  const auto file = NodesFile();
  std::string text;
  std::string errors;
  for (const auto& [port, pid] : file) {
    if (Skipped(port)) continue;
    try {
      const cluster::Reply r = NodeCommand(port, {"CLUSTER", "NODES"});
      if (r.type == cluster::Reply::Type::kString) {
        text = r.str;
        break;
      }
      errors += r.str + "; ";
    } catch (const std::exception& e) {
      errors += std::string(e.what()) + "; ";
    }
  }
  if (text.empty()) throw std::runtime_error("no node answers CLUSTER NODES: " + errors);
  std::vector<RedisNode> nodes;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    RedisNode node;
    std::string addr, flags, master, ping, pong, epoch, link, range;
    if (!(words >> node.id >> addr >> flags >> master >> ping >> pong >> epoch >> link)) continue;
    node.port = std::stoi(addr.substr(addr.rfind(':') + 1, addr.find('@') - addr.rfind(':') - 1));
    node.master = flags.find("master") != std::string::npos;
    node.failed =
        flags.find("fail") != std::string::npos && flags.find("fail?") == std::string::npos;
    if (master != "-") node.master_id = master;
    while (words >> range) {
      if (range.front() == '[') continue;  // a slot in migration
      const std::size_t dash = range.find('-');
      const int lo = std::stoi(range.substr(0, dash));
      const int hi = dash == std::string::npos ? lo : std::stoi(range.substr(dash + 1));
      node.slots.emplace_back(lo, hi);
    }
    for (const auto& [port, pid] : file) {
      if (port == node.port) node.pid = pid;
    }
    nodes.push_back(std::move(node));
  }
  std::sort(nodes.begin(), nodes.end(),
            [](const RedisNode& a, const RedisNode& b) { return a.port < b.port; });
  return nodes;
}

RedisNode MasterOf(int slot) {
  for (const RedisNode& node : ClusterNodes()) {
    if (node.master && !node.failed && node.serves(slot)) return node;
  }
  throw std::runtime_error("no master serves slot " + std::to_string(slot));
}

std::vector<RedisNode> ReplicasOf(const RedisNode& master) {
  std::vector<RedisNode> out;
  for (const RedisNode& node : ClusterNodes()) {
    if (!node.master && node.master_id == master.id) out.push_back(node);
  }
  return out;
}

void KillNode(const RedisNode& node) {
  {
    std::lock_guard<std::mutex> lock(g_mu);
    g_killed.insert(node.port);
  }
  if (::kill(node.pid, SIGKILL) != 0) {
    throw std::runtime_error("kill -9 " + std::to_string(node.pid) + " failed");
  }
  // Gone once its port refuses connections.
  for (int i = 0; i < 500; ++i) {
    try {
      NodeCommand(node.port, {"PING"});
    } catch (const std::exception&) {
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  throw std::runtime_error("node " + node.name() + " still answers 5 s after kill -9");
}

void StopNode(const RedisNode& node) {
  {
    std::lock_guard<std::mutex> lock(g_mu);
    g_stopped.insert(node.port);
  }
  if (::kill(node.pid, SIGSTOP) != 0) throw std::runtime_error("SIGSTOP failed");
}

void ContinueNode(const RedisNode& node) {
  if (::kill(node.pid, SIGCONT) != 0) throw std::runtime_error("SIGCONT failed");
  std::lock_guard<std::mutex> lock(g_mu);
  g_stopped.erase(node.port);
}

pid_t StartReshard(const RedisNode& from, const RedisNode& to, int slots) {
  const std::string log = Env("LILCACHE_TEST_CLUSTER_DIR", kHint) + "/reshard.log";
  const std::string port = std::to_string(from.port);
  const std::string n = std::to_string(slots);
  return fork_child([&]() -> int {
    FILE* out = std::freopen(log.c_str(), "a", stdout);
    if (out == nullptr) return 98;
    dup2(fileno(stdout), STDERR_FILENO);
    execlp("redis-cli", "redis-cli", "--cluster", "reshard", ("127.0.0.1:" + port).c_str(),
           "--cluster-from", from.id.c_str(), "--cluster-to", to.id.c_str(), "--cluster-slots",
           n.c_str(), "--cluster-yes", static_cast<char*>(nullptr));
    return 97;
  });
}

void WaitClusterOk(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string why;
  while (std::chrono::steady_clock::now() < deadline) {
    why.clear();
    try {
      for (const auto& [port, pid] : NodesFile()) {
        if (Skipped(port)) continue;
        const cluster::Reply r = NodeCommand(port, {"CLUSTER", "INFO"});
        if (r.str.find("cluster_state:ok") == std::string::npos) {
          why = "127.0.0.1:" + std::to_string(port) + " is not cluster_state:ok";
          break;
        }
      }
      if (why.empty()) {
        int served = 0;
        for (const RedisNode& node : ClusterNodes()) {
          if (!node.master || node.failed || Skipped(node.port)) continue;
          for (const auto& [lo, hi] : node.slots) served += hi - lo + 1;
        }
        if (served != cluster::kSlots) why = std::to_string(served) + " slots served";
      }
    } catch (const std::exception& e) {
      why = e.what();
    }
    if (why.empty()) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  throw std::runtime_error("the cluster is not ok after " + std::to_string(timeout.count()) +
                           " ms: " + why);
}

std::string KeyOn(const RedisNode& master, const std::string& prefix) {
  for (int i = 0;; ++i) {
    std::string key = prefix + ":" + std::to_string(i);
    if (master.serves(cluster::KeySlot(key))) return key;
  }
}

}  // namespace lilcache::test
