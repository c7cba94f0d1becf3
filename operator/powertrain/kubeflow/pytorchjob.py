"""Kubeflow Training Operator `PyTorchJob` (kubeflow.org/v1) → TrainingJob.

Master and Worker are one gang in Powertrain: the Master is rank 0, so replicas = Master + Worker replicas, all
from one pod template (the Worker's when there are workers). runPolicy's backoffLimit, activeDeadlineSeconds,
ttlSecondsAfterFinished and suspend mean the same in both APIs; elasticPolicy's bounds and maxRestarts become
spec.elastic.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from powertrain.kubeflow.common import (
    KUEUE_PRIORITY_LABEL,
    ConvertError,
    Note,
    PriorityLookup,
    carry_metadata,
    clean_template,
    gpus_per_replica,
    mapping,
    procs_per_node,
    resolve_priority,
)

API_VERSION = "kubeflow.org/v1"
CONTAINER = "pytorch"  # the container the Training Operator wires torchrun into

RUN_POLICY_SAME = ("backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished", "suspend")
RUN_POLICY_DROPPED = {
    "cleanPodPolicy": "no equivalent: Powertrain stops the remaining workers when rank 0 finishes and the pods go "
    "with the job (delete it, or set runPolicy.ttlSecondsAfterFinished)",
    "managedBy": "no equivalent: the Powertrain operator manages every TrainingJob",
}
SCHEDULING_DROPPED = {
    "minAvailable": "every TrainingJob is all-or-nothing: the whole gang is placed at once",
    "minResources": "Powertrain admits a gang on its GPUs (queue quotas in the ClusterTrainingPolicy)",
    "scheduleTimeoutSeconds": "no equivalent: a gang waits in its queue until it fits",
}
_OWN_RENDEZVOUS = "Powertrain wires torchrun's c10d rendezvous itself (served by rank 0, the job's uid as its id)"
ELASTIC_DROPPED = {
    "rdzvBackend": _OWN_RENDEZVOUS,
    "rdzvHost": _OWN_RENDEZVOUS,
    "rdzvPort": "the rendezvous port is spec.masterPort",
    "rdzvId": _OWN_RENDEZVOUS,
    "rdzvConf": _OWN_RENDEZVOUS,
    "standalone": _OWN_RENDEZVOUS,
    "metrics": "Powertrain's autoscaler resizes within spec.elastic from its own measurements, not an HPA",
}


def _replicas(spec: Mapping[str, Any], where: str) -> int:
    value = spec.get("replicas", 1)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConvertError(f"{where}.replicas: {value!r} is not a whole number ≥ 0")
    return value


def convert(doc: Mapping[str, Any], lookup: PriorityLookup, notes: list[Note]) -> dict[str, Any]:
    meta = carry_metadata(mapping(doc.get("metadata")), notes)
    spec_in = mapping(doc.get("spec"))
    replica_specs = mapping(spec_in.get("pytorchReplicaSpecs"))
    master = mapping(replica_specs.get("Master")) if "Master" in replica_specs else None
    worker = mapping(replica_specs.get("Worker")) if "Worker" in replica_specs else None
    for other in replica_specs:
        if other not in ("Master", "Worker"):
            notes.append(Note(f"spec.pytorchReplicaSpecs.{other}", "dropped: only Master and Worker exist"))
    if master is None and worker is None:
        raise ConvertError("spec.pytorchReplicaSpecs: needs a Master or a Worker replica spec")
    base = "spec.pytorchReplicaSpecs"
    master_n = _replicas(master, f"{base}.Master") if master is not None else 0
    worker_n = _replicas(worker, f"{base}.Worker") if worker is not None else 0
    replicas = master_n + worker_n
    if replicas < 1:
        raise ConvertError(f"{base}: Master and Worker replicas add up to 0; a TrainingJob needs at least one worker")

    main_name = "Worker" if worker is not None and worker_n > 0 else "Master"
    main = worker if main_name == "Worker" else master
    assert main is not None
    main_where = f"{base}.{main_name}.template"
    cleaned = clean_template(mapping(main.get("template")), main_where, notes, training_container=CONTAINER)
    if master is not None and main_name == "Worker" and master_n > 0:
        scratch: list[Note] = []
        master_clean = clean_template(
            mapping(master.get("template")), f"{base}.Master.template", scratch, training_container=CONTAINER
        )
        if master_clean.template != cleaned.template or master_clean.gpus != cleaned.gpus:
            notes.append(
                Note(
                    f"{base}.Master.template",
                    "differs from the Worker template and is not kept: every TrainingJob worker, rank 0 included, "
                    "runs the Worker template",
                )
            )
    for name, replica in (("Master", master), ("Worker", worker)):
        if replica is not None and replica.get("restartPolicy"):
            notes.append(
                Note(
                    f"{base}.{name}.restartPolicy",
                    f"{replica['restartPolicy']!r} not kept: a failed worker restarts the whole gang, up to "
                    "runPolicy.backoffLimit",
                )
            )

    elastic_in = mapping(spec_in.get("elasticPolicy"))
    if "nprocPerNode" in spec_in:
        nproc, nproc_field = procs_per_node(spec_in.get("nprocPerNode")), "spec.nprocPerNode"
    else:
        nproc, nproc_field = procs_per_node(elastic_in.get("nProcPerNode")), "spec.elasticPolicy.nProcPerNode"
    spec: dict[str, Any] = {
        "replicas": replicas,
        "gpusPerReplica": gpus_per_replica(cleaned.gpus, nproc, nproc_field, main_where, notes),
    }
    _elastic(elastic_in, replicas, master_n, spec, notes)
    template_priority = (f"{main_where}.spec.priorityClassName", cleaned.priority_class)
    _queue_and_priority(meta.queue, meta.priority_class, template_priority, spec_in, lookup, spec, notes)
    if cleaned.master_port is not None:
        spec["masterPort"] = cleaned.master_port
    run_policy = _run_policy(mapping(spec_in.get("runPolicy")), notes)
    if run_policy:
        spec["runPolicy"] = run_policy
    spec["template"] = cleaned.template
    return {"apiVersion": "powertrain.dev/v1alpha1", "kind": "TrainingJob", "metadata": meta.metadata, "spec": spec}


def _elastic(
    elastic_in: Mapping[str, Any], replicas: int, master_n: int, spec: dict[str, Any], notes: list[Note]
) -> None:
    if not elastic_in:
        return
    for key, why in ELASTIC_DROPPED.items():
        if key in elastic_in:
            notes.append(Note(f"spec.elasticPolicy.{key}", f"not kept: {why}"))
    low, high = elastic_in.get("minReplicas"), elastic_in.get("maxReplicas")
    if low is None and high is None:
        if "maxRestarts" in elastic_in:
            notes.append(Note("spec.elasticPolicy.maxRestarts", "not kept: no min/maxReplicas, so no spec.elastic"))
        return
    # The bounds count Worker replicas; a TrainingJob's count includes the Master's rank 0.
    low = (int(low) if low is not None else replicas - master_n) + master_n
    high = (int(high) if high is not None else replicas - master_n) + master_n
    if not low <= replicas <= high:
        notes.append(
            Note(
                "spec.elasticPolicy",
                f"minReplicas..maxReplicas ({low - master_n}..{high - master_n} workers) does not contain the "
                f"{replicas - master_n} Worker replicas; spec.elastic not set",
            )
        )
        return
    spec["elastic"] = {"minReplicas": max(1, low), "maxReplicas": high}
    restarts = elastic_in.get("maxRestarts")
    if restarts is not None:
        if isinstance(restarts, int) and not isinstance(restarts, bool) and restarts >= 0:
            spec["elastic"]["maxRestarts"] = restarts
        else:
            notes.append(Note("spec.elasticPolicy.maxRestarts", f"{restarts!r} is not a whole number ≥ 0; not kept"))


def _queue_and_priority(
    kueue_queue: str | None,
    kueue_priority: str | None,
    template_priority: tuple[str, str | None],
    spec_in: Mapping[str, Any],
    lookup: PriorityLookup,
    spec: dict[str, Any],
    notes: list[Note],
) -> None:
    scheduling = mapping(mapping(spec_in.get("runPolicy")).get("schedulingPolicy"))
    for key, why in SCHEDULING_DROPPED.items():
        if key in scheduling:
            notes.append(Note(f"spec.runPolicy.schedulingPolicy.{key}", f"not kept: {why}"))
    if kueue_queue:
        spec["queue"] = kueue_queue
        if scheduling.get("queue"):
            notes.append(
                Note("spec.runPolicy.schedulingPolicy.queue", f"not kept: the Kueue label's queue {kueue_queue!r} is")
            )
    elif scheduling.get("queue"):
        spec["queue"] = str(scheduling["queue"])
    choices = [
        (f"metadata.labels[{KUEUE_PRIORITY_LABEL}]", kueue_priority),
        ("spec.runPolicy.schedulingPolicy.priorityClass", scheduling.get("priorityClass")),
        template_priority,
    ]
    named = [(where, str(name)) for where, name in choices if name]
    if not named:
        return
    where, name = named[0]
    resolve_priority(name, where, lookup, spec, notes)
    for other_where, other in named[1:]:
        if other != name:
            notes.append(Note(other_where, f"{other!r} not used: {where} ({name!r}) decides spec.priority"))


def _run_policy(run_in: Mapping[str, Any], notes: list[Note]) -> dict[str, Any]:
    out = {key: run_in[key] for key in RUN_POLICY_SAME if run_in.get(key) is not None}
    for key, why in RUN_POLICY_DROPPED.items():
        if key in run_in:
            notes.append(Note(f"spec.runPolicy.{key}", f"{run_in[key]!r} not kept: {why}"))
    return out
