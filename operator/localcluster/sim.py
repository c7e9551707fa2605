"""Names shared by the simulated parts of the test cluster (CONTRACTS.md items 4 and 5).

kwok reads the pod annotations through its Stage templates in kwok/stages.yaml, which spell the same keys;
tests/cluster/test_sim_config.py checks that the two agree.
"""

from __future__ import annotations

# kwok pod simulation, by pod annotation.
# Exit code of every container of a Job pod: "0" (the default) -> Succeeded, anything else -> Failed.
EXIT_CODE_ANNOTATION = "sim.tpuserve.dev/exit-code"
# Text put into the terminated container state's `message` (what kubelet reads from terminationMessagePath).
TERMINATION_MESSAGE_ANNOTATION = "sim.tpuserve.dev/termination-message"
# "false": the pod runs but never becomes Ready (a server that does not come up).
READY_ANNOTATION = "sim.tpuserve.dev/ready"
# A Go duration ("5s", "1m"): how long a Job pod stays Running before it completes (default: at once).
RUN_DURATION_ANNOTATION = "sim.tpuserve.dev/run-duration"

# Simulated cluster DNS: a Service with this annotation ("host:port") stands for a local process; the local
# node rewrites `<svc>.<ns>.svc[.cluster.local]:<port>` in args and env values to it.
ADDRESS_ANNOTATION = "sim.tpuserve.dev/address"

# kwok manages the nodes carrying this annotation (kwok --manage-nodes-with-annotation-selector).
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_NODE_ANNOTATION_VALUE = "fake"

# The local node whose pods run as real processes.
LOCAL_NODE_NAME = "tpuserve-local"
LOCAL_NODE_LABEL = "tpuserve.dev/local-node"
LOCAL_NODE_TAINT_KEY = "tpuserve.dev/local-node"
LOCAL_NODE_TAINT_VALUE = "true"
LOCAL_NODE_TAINT_EFFECT = "NoSchedule"


def local_node_placement() -> dict[str, object]:
    """The nodeSelector and tolerations that put a pod on the local node (as pod-spec fields)."""
    return {
        "nodeSelector": {LOCAL_NODE_LABEL: "true"},
        "tolerations": [
            {
                "key": LOCAL_NODE_TAINT_KEY,
                "operator": "Equal",
                "value": LOCAL_NODE_TAINT_VALUE,
                "effect": LOCAL_NODE_TAINT_EFFECT,
            }
        ],
    }
