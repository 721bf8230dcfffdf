"""Holds a two-node Ray cluster on this machine for a test, driven through stdin.

Prints the cluster address, then reads commands, one a line:
  kill-worker   remove the worker node without a graceful shutdown (its raylet and
                workers die, as when a machine is lost); prints "killed <node id>"
  quit / EOF    shut the cluster down
Head: 1 CPU; worker: 1 CPU plus a `worker_slot` resource (FACTS.md: both nodes
share one IP, so custom resources, not node:<ip>, tell them apart).
"""

import sys

from ray.cluster_utils import Cluster


def main() -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker = cluster.add_node(num_cpus=1, resources={"worker_slot": 1})
    cluster.wait_for_nodes()
    print(f"address {cluster.address} head {cluster.head_node.node_id} worker {worker.node_id}", flush=True)
    try:
        for line in sys.stdin:
            command = line.strip()
            if command == "kill-worker" and worker is not None:
                node_id = worker.node_id
                cluster.remove_node(worker, allow_graceful=False)
                worker = None
                print(f"killed {node_id}", flush=True)
            elif command == "quit":
                break
            elif command:
                print(f"unknown command {command!r}", flush=True)
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    main()
