"""Pure scheduling core: decisions over an in-memory cluster snapshot. No kopf, no Kubernetes client, no I/O,
no clocks (time is an argument).

- `quantity`, `predicates`: Kubernetes quantities and the kube-scheduler filters over plain dicts.
- `snapshot`: nodes, pods, telemetry, TrainingJobs and the policy, kept current object by object.
- `topology`: domains per level (node < nvlink < rack < spine < zone) from node labels.
- `placement`: all-or-nothing, topology-aware gang placement.
- `queueing`, `preemption`: queue order, quotas, the head's reserved domain, victims.
- `scheduler`: `schedule(snapshot, now)`, one pass → `Decisions`.
- `lifecycle`, `backoff`, `conditions`: per job, the next status and what to create or delete.
- `workload`: the worker pods and headless Service of a gang.
- `power`: which GPU gets which requested power limit (from jobs' caps and the agents' pod→GPU attribution).
"""
