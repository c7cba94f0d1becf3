"""TrainingJob condition types and reasons: the words users see in `kubectl describe tj` and in alerts."""

from __future__ import annotations

from typing import Final

# Condition types.
QUEUED: Final = "Queued"
SCHEDULED: Final = "Scheduled"
UNSCHEDULABLE: Final = "Unschedulable"
RUNNING: Final = "Running"
RESTARTING: Final = "Restarting"
PREEMPTED: Final = "Preempted"
SUSPENDED: Final = "Suspended"
SUCCEEDED: Final = "Succeeded"
FAILED: Final = "Failed"
INVALID: Final = "Invalid"

# Reasons (CamelCase, machine readable).
REASON_SUBMITTED: Final = "Submitted"
REASON_WAITING_FOR_RESOURCES: Final = "WaitingForResources"
REASON_QUOTA_EXCEEDED: Final = "QuotaExceeded"
REASON_UNKNOWN_QUEUE: Final = "UnknownQueue"
REASON_TOPOLOGY: Final = "TopologyUnsatisfiable"
REASON_NO_MATCHING_NODES: Final = "NoMatchingNodes"
REASON_WAITING_FOR_PREEMPTION: Final = "WaitingForPreemption"
REASON_BEHIND_HIGHER_PRIORITY: Final = "ReservedForHigherPriority"
REASON_PLACED: Final = "Placed"
REASON_STARTING: Final = "Starting"
REASON_ALL_RUNNING: Final = "AllReplicasRunning"
REASON_POD_FAILED: Final = "PodFailed"
REASON_POD_MISSING: Final = "PodMissing"
REASON_NODE_LOST: Final = "NodeLost"
REASON_GPU_UNHEALTHY: Final = "GPUUnhealthy"
REASON_BACKOFF: Final = "Backoff"
REASON_PREEMPTED: Final = "PreemptedByHigherPriority"
REASON_SUSPENDED: Final = "SuspendedByUser"
REASON_RESUMED: Final = "Resumed"
REASON_RESIZED: Final = "Resized"
REASON_COMPLETED: Final = "Completed"
REASON_BACKOFF_LIMIT_EXCEEDED: Final = "BackoffLimitExceeded"
REASON_DEADLINE_EXCEEDED: Final = "DeadlineExceeded"
REASON_INVALID_SPEC: Final = "InvalidSpec"
