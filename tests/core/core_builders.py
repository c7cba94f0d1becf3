"""Small builders for core/v1 and powertrain.dev objects as the API server would return them."""

from __future__ import annotations

from typing import Any

from powertrain.api import constants as c
from powertrain.core.snapshot import ClusterSnapshot

H200 = "NVIDIA-H200"
H100 = "NVIDIA-H100-80GB-HBM3"
T0 = "2026-01-01T00:00:00Z"


def node(
    name: str,
    *,
    gpus: int = 8,
    model: str = H200,
    rack: str | None = None,
    spine: str | None = None,
    zone: str | None = "z1",
    nvlink: str | None = None,
    cpu: str = "128",
    memory: str = "1Ti",
    taints: list[dict[str, str]] | None = None,
    unschedulable: bool = False,
    ready: str = "True",
    ready_since: str = T0,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    all_labels = {c.HOSTNAME_LABEL: name, c.GPU_PRODUCT_LABEL: model, **(labels or {})}
    for key, value in (
        (c.RACK_LABEL, rack),
        (c.SPINE_LABEL, spine),
        (c.ZONE_LABEL, zone),
        (c.NVLINK_DOMAIN_LABEL, nvlink),
    ):
        if value is not None:
            all_labels[key] = value
    spec: dict[str, Any] = {}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": all_labels},
        "spec": spec,
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, c.GPU_RESOURCE: str(gpus), "pods": "110"},
            "conditions": [{"type": "Ready", "status": ready, "lastTransitionTime": ready_since}],
        },
    }


def cluster(
    *, spines: int = 2, racks: int = 2, nodes: int = 4, gpus: int = 8, model: str = H200, prefix: str = ""
) -> list[dict[str, Any]]:
    """spines × racks-per-spine × nodes-per-rack nodes named {prefix}s{i}-r{j}-n{k}."""
    out = []
    for s in range(spines):
        for r in range(racks):
            for n in range(nodes):
                name = f"{prefix}s{s}-r{r}-n{n}"
                out.append(node(name, gpus=gpus, model=model, rack=f"{prefix}s{s}-r{r}", spine=f"{prefix}s{s}"))
    return out


def job(
    name: str,
    *,
    replicas: int = 1,
    gpus: int = 8,
    level: str = "rack",
    mode: str = "Preferred",
    priority: int = 0,
    queue: str = "default",
    models: list[str] | None = None,
    namespace: str = "default",
    created: str = T0,
    status: dict[str, Any] | None = None,
    pod_spec: dict[str, Any] | None = None,
    run_policy: dict[str, Any] | None = None,
    rv: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "replicas": replicas,
        "gpusPerReplica": gpus,
        "topology": {"level": level, "mode": mode},
        "priority": priority,
        "queue": queue,
        "template": {"spec": {"containers": [{"name": "trainer", "image": "img"}], **(pod_spec or {})}},
    }
    if models:
        spec["gpuModel"] = models
    if run_policy:
        spec["runPolicy"] = run_policy
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "uid": f"uid-{name}", "creationTimestamp": created}
    if rv:
        meta["resourceVersion"] = rv
    obj: dict[str, Any] = {"apiVersion": c.API_VERSION, "kind": "TrainingJob", "metadata": meta, "spec": spec}
    if status is not None:
        obj["status"] = status
    return obj


def running(obj: dict[str, Any], nodes: list[str], start: str = T0, **status: Any) -> dict[str, Any]:
    obj["status"] = {
        "phase": "Running",
        "placement": {"level": "rack", "domain": "x", "nodes": nodes},
        "startTime": start,
        "submitTime": start,
        **status,
    }
    return obj


def worker_pods(obj: dict[str, Any], phase: str = "Running", generation: int = 1) -> list[dict[str, Any]]:
    """The bound worker pods of a running job, one per rank of its placement."""
    name = obj["metadata"]["name"]
    ns = obj["metadata"]["namespace"]
    gpus = obj["spec"]["gpusPerReplica"]
    out = []
    for rank, node_name in enumerate(obj["status"]["placement"]["nodes"]):
        out.append(
            {
                "metadata": {
                    "name": f"{name}-worker-{rank}",
                    "namespace": ns,
                    "labels": {
                        c.JOB_NAME_LABEL: name,
                        c.REPLICA_INDEX_LABEL: str(rank),
                        c.GANG_GENERATION_LABEL: str(generation),
                    },
                },
                "spec": {
                    "nodeName": node_name,
                    "containers": [
                        {"name": "trainer", "image": "img", "resources": {"limits": {c.GPU_RESOURCE: gpus}}}
                    ],
                },
                "status": {"phase": phase},
            }
        )
    return out


def foreign_pod(name: str, node_name: str, gpus: int = 0, cpu: str = "1", namespace: str = "other") -> dict[str, Any]:
    limits: dict[str, Any] = {"cpu": cpu}
    if gpus:
        limits[c.GPU_RESOURCE] = str(gpus)
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"nodeName": node_name, "containers": [{"name": "c", "image": "i", "resources": {"limits": limits}}]},
        "status": {"phase": "Running"},
    }


def telemetry(
    node_name: str, unhealthy: list[int], gpus: int = 8, pods: dict[int, tuple[str, str]] | None = None
) -> dict[str, Any]:
    readings = []
    for i in range(gpus):
        reading: dict[str, Any] = {"index": i, "uuid": f"GPU-{node_name}-{i}", "healthy": i not in unhealthy}
        if pods and i in pods:
            reading["pod"] = {"namespace": pods[i][0], "name": pods[i][1]}
        readings.append(reading)
    return {
        "apiVersion": c.API_VERSION,
        "kind": "NodeTelemetry",
        "metadata": {"name": node_name},
        "status": {"gpus": readings},
    }


def policy(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": c.API_VERSION, "kind": "ClusterTrainingPolicy", "metadata": {"name": "default"}, "spec": spec}


def snap(
    nodes: list[dict[str, Any]],
    jobs: list[dict[str, Any]] = (),  # type: ignore[assignment]
    pods: list[dict[str, Any]] = (),  # type: ignore[assignment]
    **kw: Any,
) -> ClusterSnapshot:
    return ClusterSnapshot.build(nodes=nodes, jobs=jobs, pods=pods, **kw)
