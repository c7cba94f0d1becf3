"""Kubeflow Trainer v2 `TrainJob` (trainer.kubeflow.org/v1alpha1) → TrainingJob, where it maps.

A TrainJob keeps most of its shape in the runtime it names (ClusterTrainingRuntime / TrainingRuntime): image,
command, volumes, processes per node. `convert` reads only the TrainJob, so what the runtime supplies must be
written into the TrainingJob by hand; the note on spec.runtimeRef says so. The trainer's image is required.
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
    gpu_quantity,
    gpus_per_replica,
    mapping,
    procs_per_node,
    resolve_priority,
    strip_gpus,
)

API_VERSION = "trainer.kubeflow.org/v1alpha1"
CONTAINER = "node"  # Trainer's name for the training container of its torch runtimes

TRAINER_CONTAINER_FIELDS = ("image", "command", "args", "env", "envFrom")
DROPPED = {
    "initializer": "Powertrain has no dataset/model initializer step; download in an init container instead",
    "podSpecOverrides": "overrides target the runtime's jobs, which convert cannot read; edit spec.template instead",
    "podTemplateOverrides": "overrides target the runtime's jobs, which convert cannot read; edit spec.template "
    "instead",
    "managedBy": "no equivalent: the Powertrain operator manages every TrainingJob",
}


def convert(doc: Mapping[str, Any], lookup: PriorityLookup, notes: list[Note]) -> dict[str, Any]:
    meta = carry_metadata(mapping(doc.get("metadata")), notes)
    spec_in = mapping(doc.get("spec"))
    trainer = mapping(spec_in.get("trainer"))
    runtime = mapping(spec_in.get("runtimeRef"))
    runtime_name = f"{runtime.get('kind', 'ClusterTrainingRuntime')} {runtime.get('name', '?')!r}"
    if not trainer.get("image"):
        raise ConvertError(
            f"spec.trainer.image is not set: the image comes from the runtime ({runtime_name}), which convert "
            "cannot read; add spec.trainer.image to the TrainJob and convert again"
        )
    if runtime:
        notes.append(
            Note(
                "spec.runtimeRef",
                f"{runtime_name} not resolved: convert reads only the TrainJob; copy from the runtime what the "
                "TrainJob does not set (volumes, env, command, processes per node) into spec.template",
            )
        )
    container: dict[str, Any] = {"name": CONTAINER}
    container.update({key: trainer[key] for key in TRAINER_CONTAINER_FIELDS if trainer.get(key)})
    resources = mapping(trainer.get("resourcesPerNode"))
    gpus = gpu_quantity(resources, "spec.trainer.resourcesPerNode")
    if resources:
        rest = strip_gpus(resources)
        if rest:
            container["resources"] = rest
    template: dict[str, Any] = {"spec": {"containers": [container]}}
    pod_meta = {key: dict(mapping(spec_in.get(key))) for key in ("labels", "annotations") if spec_in.get(key)}
    if pod_meta:
        template["metadata"] = pod_meta
    cleaned = clean_template(template, "spec.trainer", notes, training_container=CONTAINER)

    nodes = trainer.get("numNodes")
    if nodes is None:
        notes.append(Note("spec.trainer.numNodes", f"not set (it comes from {runtime_name}): replicas set to 1"))
        nodes = 1
    if not isinstance(nodes, int) or isinstance(nodes, bool) or nodes < 1:
        raise ConvertError(f"spec.trainer.numNodes: {nodes!r} is not a whole number ≥ 1")
    spec: dict[str, Any] = {
        "replicas": nodes,
        "gpusPerReplica": gpus_per_replica(
            gpus,
            procs_per_node(trainer.get("numProcPerNode")),
            "spec.trainer.numProcPerNode",
            "spec.trainer.resourcesPerNode",
            notes,
        ),
    }
    if meta.queue:
        spec["queue"] = meta.queue
    if meta.priority_class:
        resolve_priority(meta.priority_class, f"metadata.labels[{KUEUE_PRIORITY_LABEL}]", lookup, spec, notes)
    if spec_in.get("suspend") is not None:
        spec["runPolicy"] = {"suspend": bool(spec_in["suspend"])}
    for key, why in DROPPED.items():
        if spec_in.get(key):
            notes.append(Note(f"spec.{key}", f"not kept: {why}"))
    spec["template"] = cleaned.template
    return {"apiVersion": "powertrain.dev/v1alpha1", "kind": "TrainingJob", "metadata": meta.metadata, "spec": spec}
