// redis_cluster: the test cluster of test/cluster/with_cluster.sh, seen from
// a C++ test: its URL, its nodes, and what a test does to them (kill -9,
// SIGSTOP/SIGCONT, resharding, waiting for cluster_state:ok).
//
// The cluster suites run only through with_cluster.sh (test/meson.build):
// every helper throws std::runtime_error if its environment is missing, so
// a suite run by hand without a cluster fails, saying so.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "cluster/client.h"

namespace lilcache::test {

// $LILCACHE_TEST_CLUSTER (redis-cluster://127.0.0.1:P1,...).
std::string ClusterUrl();
// $LILCACHE_TEST_REDIS (redis://127.0.0.1:P): with_cluster.sh --single.
std::string SingleRedisUrl();

struct RedisNode {
  int port = 0;
  pid_t pid = 0;
  std::string id;  // the cluster node id
  bool master = false;
  std::string master_id;                   // a replica's master
  bool failed = false;                     // flagged fail (or unreachable: no answer)
  std::vector<std::pair<int, int>> slots;  // a master's slot ranges
  std::string name() const { return "127.0.0.1:" + std::to_string(port); }
  bool serves(int slot) const;
};

// The nodes of $LILCACHE_TEST_CLUSTER_DIR/nodes (port and pid) with their
// roles and slots from CLUSTER NODES of the first node that answers (among
// those not stopped by StopNode).
std::vector<RedisNode> ClusterNodes();
// The master serving `slot` now, and the replicas of a master.
RedisNode MasterOf(int slot);
std::vector<RedisNode> ReplicasOf(const RedisNode& master);

// One command on one node (a connection of its own, 2 s timeouts).
cluster::Reply NodeCommand(int port, const std::vector<std::string>& args);
// NodeCommand on every node not stopped; throws if a reply is an error.
void AllNodesCommand(const std::vector<std::string>& args);

// kill -9 (and waits until the process is gone: the servers are
// with_cluster.sh's children, not ours); SIGSTOP; SIGCONT.
void KillNode(const RedisNode& node);
void StopNode(const RedisNode& node);
void ContinueNode(const RedisNode& node);

// `redis-cli --cluster reshard 127.0.0.1:PORT --cluster-from FROM
// --cluster-to TO --cluster-slots N --cluster-yes`, started in the
// background: returns its pid (wait with wait_child). Its output goes to
// $LILCACHE_TEST_CLUSTER_DIR/reshard.log.
pid_t StartReshard(const RedisNode& from, const RedisNode& to, int slots);

// Waits until every node that runs (not killed, not stopped) says
// cluster_state:ok and sees no failed node serving slots, and every slot
// is served; throws after `timeout`.
void WaitClusterOk(std::chrono::milliseconds timeout = std::chrono::seconds(30));

// A key of `tag` whose slot is `slot`'s master's, e.g. KeyOn(master, "x")
// gives "x:17" with KeySlot in master.slots.
std::string KeyOn(const RedisNode& master, const std::string& prefix);

}  // namespace lilcache::test
