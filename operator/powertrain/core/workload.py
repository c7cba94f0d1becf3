"""The objects a placed gang is made of: one pod per replica and a headless Service, as pure dict builders.

Names are deterministic (`<job>-worker-<rank>`, Service `<job>`), so a restarted operator finds what it
created instead of creating twice, and every object is owned by the TrainingJob, so nothing is orphaned.
Workers get the environment Kubeflow's PyTorchJob gives; the user's template is merged, never clobbered:
their containers, env, volumes and labels stay, and a variable they set themselves wins over ours.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any, Final

from powertrain.api import constants as c
from powertrain.api.trainingjob import TrainingJob, TrainingJobSpec
from powertrain.core.predicates import pod_requests

GANG_GENERATION_ANNOTATION: Final = f"{c.GROUP}/gang-generation"
"""On the TrainingJob: the generation of its current (or last) gang; each (re)placement increments it."""

RENDEZVOUS_PORT_NAME: Final = "rendezvous"
_DNS_1035: Final = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_MAX_LABEL: Final = 63


def pod_name(job_name: str, rank: int) -> str:
    return f"{job_name}-worker-{rank}"


def service_name(job_name: str) -> str:
    return job_name


def master_addr(job_name: str) -> str:
    """Rank 0's stable DNS name (hostname.subdomain), resolvable from every pod of the namespace."""
    return f"{pod_name(job_name, 0)}.{service_name(job_name)}"


def check_job_name(name: str, replicas: int) -> str | None:
    """Why worker hostnames and the Service cannot be made from this job name, or None when they can."""
    if not _DNS_1035.match(name):
        return (
            f"metadata.name: {name!r} is invalid: the headless Service is named after the job, so the name must "
            "start with a letter and contain only lowercase letters, digits and '-'"
        )
    longest = pod_name(name, max(replicas - 1, 0))
    if len(longest) > _MAX_LABEL:
        allowed = _MAX_LABEL - (len(longest) - len(name))
        return (
            f"metadata.name: {name!r} is too long: worker hostnames such as {longest!r} must be at most "
            f"{_MAX_LABEL} characters; use a name of at most {allowed} characters"
        )
    return None


def _container_with_gpus(container: Mapping[str, Any], gpus: int) -> dict[str, Any]:
    out = dict(container)
    resources = dict(out.get("resources") or {})
    limits = dict(resources.get("limits") or {})
    limits[c.GPU_RESOURCE] = str(gpus)
    resources["limits"] = limits
    requests = resources.get("requests")
    if isinstance(requests, Mapping) and c.GPU_RESOURCE in requests:
        # Extended resources cannot be overcommitted: the API server demands requests == limits.
        resources["requests"] = {**requests, c.GPU_RESOURCE: str(gpus)}
    out["resources"] = resources
    return out


def replica_spec(spec: TrainingJobSpec) -> dict[str, Any]:
    """The pod spec every worker gets before per-rank wiring: the template with the GPUs on the first container."""
    pod_spec = copy.deepcopy(spec.template.spec.to_wire())
    containers = list(pod_spec.get("containers") or [])
    if containers:
        containers[0] = _container_with_gpus(containers[0], spec.gpus_per_replica)
    pod_spec["containers"] = containers
    return pod_spec


def replica_requests(spec: TrainingJobSpec) -> dict[str, int]:
    """What one worker needs on its node (GPUs, cpu, memory, one pod slot), in scheduler units."""
    return pod_requests({"spec": replica_spec(spec)})


def worker_env(job_name: str, spec: TrainingJobSpec, rank: int, job_uid: str = "") -> list[dict[str, str]]:
    """Kubeflow PyTorchJob's variables: one node per pod, gpusPerReplica processes per node.

    An elastic job's workers get torchrun's elastic rendezvous instead of a fixed world: the same values in
    every pod whatever the gang's current size (so a resize never needs a survivor's env changed), with the
    c10d store served by rank 0, which a shrink never removes. Sizes and node ranks are torchrun's to assign."""
    addr = master_addr(job_name)
    port = str(spec.master_port)
    elastic = spec.elastic
    if elastic is not None:
        return [
            {"name": c.ENV_MASTER_ADDR, "value": addr},
            {"name": c.ENV_MASTER_PORT, "value": port},
            {"name": c.ENV_PET_NNODES, "value": f"{elastic.min_replicas}:{elastic.max_replicas}"},
            {"name": c.ENV_PET_NPROC_PER_NODE, "value": str(spec.gpus_per_replica)},
            {"name": c.ENV_PET_RDZV_BACKEND, "value": "c10d"},
            {"name": c.ENV_PET_RDZV_ENDPOINT, "value": f"{addr}:{port}"},
            {"name": c.ENV_PET_RDZV_ID, "value": job_uid or job_name},
            {"name": c.ENV_PET_MAX_RESTARTS, "value": str(elastic.max_restarts)},
        ]
    return [
        {"name": c.ENV_MASTER_ADDR, "value": addr},
        {"name": c.ENV_MASTER_PORT, "value": port},
        {"name": c.ENV_WORLD_SIZE, "value": str(spec.replicas)},
        {"name": c.ENV_RANK, "value": str(rank)},
        {"name": c.ENV_PET_NNODES, "value": str(spec.replicas)},
        {"name": c.ENV_PET_NPROC_PER_NODE, "value": str(spec.gpus_per_replica)},
        {"name": c.ENV_PET_NODE_RANK, "value": str(rank)},
        {"name": c.ENV_PET_MASTER_ADDR, "value": addr},
        {"name": c.ENV_PET_MASTER_PORT, "value": port},
    ]


def _merge_env(container: Mapping[str, Any], ours: list[dict[str, str]]) -> dict[str, Any]:
    out = dict(container)
    theirs = [e for e in (out.get("env") or []) if isinstance(e, Mapping)]
    taken = {e.get("name") for e in theirs}
    out["env"] = [*theirs, *(e for e in ours if e["name"] not in taken)]
    return out


def owner_reference(job: TrainingJob) -> dict[str, Any]:
    meta = job.metadata
    return {
        "apiVersion": c.API_VERSION,
        "kind": "TrainingJob",
        "name": str(meta.get("name", "")),
        "uid": str(meta.get("uid", "")),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def job_labels(job_name: str) -> dict[str, str]:
    return {c.JOB_NAME_LABEL: job_name}


def render_pod(job: TrainingJob, rank: int, generation: int, node_name: str | None = None) -> dict[str, Any]:
    """The worker pod of one rank. With `node_name` the pod is created bound; otherwise bind it afterwards
    through pods/binding once the whole gang exists (schedulerName keeps kube-scheduler away from it)."""
    name = str(job.metadata.get("name", ""))
    namespace = job.metadata.get("namespace")
    spec = job.spec
    template_meta = spec.template.metadata or {}
    labels = {**(template_meta.get("labels") or {}), **job_labels(name)}
    labels[c.REPLICA_INDEX_LABEL] = str(rank)
    labels[c.GANG_GENERATION_LABEL] = str(generation)
    metadata: dict[str, Any] = {
        "name": pod_name(name, rank),
        "labels": labels,
        "ownerReferences": [owner_reference(job)],
    }
    if namespace:
        metadata["namespace"] = namespace
    annotations = template_meta.get("annotations")
    if annotations:
        metadata["annotations"] = dict(annotations)
    pod_spec = replica_spec(spec)
    env = worker_env(name, spec, rank, str(job.metadata.get("uid") or ""))
    pod_spec["containers"] = [_merge_env(ctr, env) for ctr in pod_spec["containers"]]
    pod_spec["schedulerName"] = c.SCHEDULER_NAME
    pod_spec["hostname"] = pod_name(name, rank)
    pod_spec["subdomain"] = service_name(name)
    pod_spec["restartPolicy"] = "Never"
    if node_name is not None:
        pod_spec["nodeName"] = node_name
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}


def render_gang(
    job: TrainingJob, nodes: list[str] | tuple[str, ...], generation: int, first_rank: int = 0
) -> list[dict[str, Any]]:
    """Every worker pod, rank by rank (unbound: the shell binds them once all exist). With `first_rank`, only
    the ranks from there on: the pods an elastic gang grows by, beside the survivors."""
    return [render_pod(job, rank, generation) for rank in range(first_rank, len(nodes))]


def render_service(job: TrainingJob) -> dict[str, Any]:
    """The headless Service that gives each worker a stable DNS name, published before pods are Ready
    (rendezvous happens before any worker could be Ready)."""
    name = str(job.metadata.get("name", ""))
    metadata: dict[str, Any] = {
        "name": service_name(name),
        "labels": job_labels(name),
        "ownerReferences": [owner_reference(job)],
    }
    namespace = job.metadata.get("namespace")
    if namespace:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "clusterIP": "None",
            "selector": job_labels(name),
            "publishNotReadyAddresses": True,
            "ports": [{"name": RENDEZVOUS_PORT_NAME, "port": job.spec.master_port, "targetPort": job.spec.master_port}],
        },
    }
