"""What every Kubeflow kind shares on its way to a TrainingJob: metadata, Kueue labels, priority, pod templates."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from powertrain.api import constants as c

KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
KUEUE_PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

# Set by the API server or by whoever ran the job; meaningless on a new object.
SERVER_METADATA = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink")

WORKER_ENV = frozenset(
    {
        c.ENV_MASTER_ADDR,
        c.ENV_MASTER_PORT,
        c.ENV_WORLD_SIZE,
        c.ENV_RANK,
        c.ENV_PET_NNODES,
        c.ENV_PET_NPROC_PER_NODE,
        c.ENV_PET_NODE_RANK,
        c.ENV_PET_MASTER_ADDR,
        c.ENV_PET_MASTER_PORT,
    }
)

PriorityLookup = Mapping[str, "int | str"]
"""Priority class name → its value, or → why it could not be resolved. A name absent from the mapping was not
looked up at all (no cluster, no --priority-class flag for it)."""

NOT_LOOKED_UP = "not resolved: pass --kubeconfig to read it from the cluster, or --priority-class {name}=VALUE"


class ConvertError(ValueError):
    """A document that cannot become a TrainingJob at all (wrong kind, no replicas, no image ...)."""


@dataclass(frozen=True)
class Note:
    """One field that was not carried over, and why."""

    field: str
    why: str

    def __str__(self) -> str:
        return f"{self.field}: {self.why}"


@dataclass
class Conversion:
    source: str
    """What was converted, e.g. "PyTorchJob kubeflow/pytorch-simple"."""
    job: dict[str, Any]
    """The TrainingJob in wire form, already validated against the API model."""
    notes: list[Note] = field(default_factory=list)


def mapping(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def describe(doc: Mapping[str, Any]) -> str:
    meta = mapping(doc.get("metadata"))
    name = str(meta.get("name") or "(unnamed)")
    namespace = meta.get("namespace")
    return f"{doc.get('kind', '?')} {namespace}/{name}" if namespace else f"{doc.get('kind', '?')} {name}"


@dataclass
class JobMetadata:
    metadata: dict[str, Any]
    queue: str | None
    priority_class: str | None


def carry_metadata(meta: Mapping[str, Any], notes: list[Note]) -> JobMetadata:
    """Name, namespace, labels and annotations; Kueue's labels become spec fields instead."""
    out: dict[str, Any] = {}
    if not meta.get("name"):
        if meta.get("generateName"):
            out["generateName"] = meta["generateName"]
        else:
            raise ConvertError("metadata.name is required")
    for key in ("name", "namespace"):
        if meta.get(key):
            out[key] = meta[key]
    labels = {str(k): v for k, v in mapping(meta.get("labels")).items()}
    queue = labels.pop(KUEUE_QUEUE_LABEL, None)
    priority_class = labels.pop(KUEUE_PRIORITY_LABEL, None)
    if labels:
        out["labels"] = labels
    annotations = {str(k): v for k, v in mapping(meta.get("annotations")).items() if k != LAST_APPLIED}
    if annotations:
        out["annotations"] = annotations
    for key in SERVER_METADATA:
        if key in meta:
            notes.append(Note(f"metadata.{key}", "dropped: set by the API server of the cluster it came from"))
    if meta.get("ownerReferences"):
        notes.append(Note("metadata.ownerReferences", "dropped: the owners are objects of the old job's cluster"))
    return JobMetadata(
        out, None if queue is None else str(queue), None if priority_class is None else str(priority_class)
    )


def resolve_priority(name: str, where: str, lookup: PriorityLookup, spec: dict[str, Any], notes: list[Note]) -> None:
    """spec.priority from a priority class's value, within the TrainingJob's bounds."""
    found = lookup.get(name)
    if found is None:
        notes.append(Note(where, f"{name!r} " + NOT_LOOKED_UP.format(name=name) + "; spec.priority left at 0"))
        return
    if isinstance(found, str):
        notes.append(Note(where, f"{name!r} not resolved: {found}; spec.priority left at 0"))
        return
    if not -1_000_000 <= found <= 1_000_000:
        notes.append(
            Note(
                where,
                f"{name!r} has value {found}, outside spec.priority's range -1000000..1000000; set spec.priority "
                "by hand to rank it among your other jobs (left at 0)",
            )
        )
        return
    spec["priority"] = found


_QUANTITY = re.compile(r"^\d+$")


def gpu_quantity(resources: Mapping[str, Any], where: str) -> int | None:
    """The `nvidia.com/gpu` count of a resources block (limits first: extended resources need limits)."""
    for kind in ("limits", "requests"):
        value = mapping(resources.get(kind)).get(c.GPU_RESOURCE)
        if value is None:
            continue
        text = str(value).strip()
        if not _QUANTITY.match(text):
            raise ConvertError(f"{where}.{kind}[{c.GPU_RESOURCE}]: {value!r} is not a whole number of GPUs")
        return int(text)
    return None


def strip_gpus(resources: Mapping[str, Any]) -> dict[str, Any]:
    """The resources block without `nvidia.com/gpu`: the operator writes it from spec.gpusPerReplica."""
    out: dict[str, Any] = {}
    for kind, values in resources.items():
        if kind in ("limits", "requests") and isinstance(values, Mapping):
            rest = {k: v for k, v in values.items() if k != c.GPU_RESOURCE}
            if rest:
                out[kind] = rest
        else:
            out[kind] = values
    return out


@dataclass
class CleanTemplate:
    template: dict[str, Any]
    gpus: int | None
    """GPUs the pod asked for (all containers together), None when none asked."""
    master_port: int | None
    priority_class: str | None


# Pod spec fields the operator sets on every worker; a template's own value would be overwritten or conflict.
OWNED_POD_FIELDS = {
    "schedulerName": "Powertrain places and binds the whole gang itself",
    "nodeName": "Powertrain chooses the nodes for the gang",
    "hostname": "Powertrain names each worker after the job and its rank",
    "subdomain": "Powertrain creates the headless Service that gives workers their DNS names",
    "restartPolicy": "a failed worker restarts the whole gang, up to runPolicy.backoffLimit",
}


def clean_template(
    template: Mapping[str, Any], where: str, notes: list[Note], *, training_container: str | None
) -> CleanTemplate:
    """The pod template without what the operator owns; the training container first (the operator gives it the
    GPUs and treats it as the trainer)."""
    out = copy.deepcopy(dict(template))
    spec = mapping(out.get("spec"))
    containers = [mapping(ctr) for ctr in spec.get("containers") or []]
    if not containers:
        raise ConvertError(f"{where}.spec.containers: no containers")
    if training_container is not None:
        first = next((i for i, ctr in enumerate(containers) if ctr.get("name") == training_container), 0)
        containers.insert(0, containers.pop(first))
    gpus: int | None = None
    master_port: int | None = None
    asked = 0
    for i, ctr in enumerate(containers):
        path = f"{where}.spec.containers[{ctr.get('name', i)}]"
        resources = mapping(ctr.get("resources"))
        count = gpu_quantity(resources, f"{path}.resources")
        if count is not None:
            gpus = (gpus or 0) + count
            asked += 1
            stripped = strip_gpus(resources)
            if stripped:
                ctr["resources"] = stripped
            else:
                ctr.pop("resources", None)
        env = [e for e in ctr.get("env") or [] if isinstance(e, Mapping)]
        ours = [str(e.get("name")) for e in env if e.get("name") in WORKER_ENV]
        if ours:
            ctr["env"] = [e for e in env if e.get("name") not in WORKER_ENV]
            if not ctr["env"]:
                del ctr["env"]
            notes.append(Note(f"{path}.env", f"dropped {', '.join(ours)}: the operator sets them for every rank"))
        for port in ctr.get("ports") or []:
            if isinstance(port, Mapping) and port.get("name") == "pytorchjob-port":
                # Kubeflow's rendezvous port; the TrainingJob sets MASTER_PORT from spec.masterPort.
                master_port = int(port.get("containerPort") or 0) or None
    if asked > 1:
        notes.append(
            Note(
                f"{where}.spec.containers",
                f"{asked} containers asked for GPUs; all {gpus} now go to the training container "
                f"{containers[0].get('name')!r}",
            )
        )
    spec["containers"] = containers
    for key, why in OWNED_POD_FIELDS.items():
        if key in spec:
            notes.append(Note(f"{where}.spec.{key}", f"dropped ({spec.pop(key)!r}): {why}"))
    priority_class = spec.pop("priorityClassName", None)
    spec.pop("priority", None)
    out["spec"] = spec
    meta = mapping(out.get("metadata"))
    meta = {k: v for k, v in meta.items() if k in ("labels", "annotations") and v}
    if meta:
        out["metadata"] = meta
    else:
        out.pop("metadata", None)
    return CleanTemplate(out, gpus, master_port, None if priority_class is None else str(priority_class))


def procs_per_node(value: Any) -> int | str | None:
    """torchrun's --nproc-per-node as Kubeflow accepts it: a number, or auto / gpu / cpu."""
    if value is None:
        return None
    text = str(value).strip()
    return int(text) if text.isdigit() else text


def gpus_per_replica(
    asked: int | None, nproc: int | str | None, nproc_field: str, where: str, notes: list[Note]
) -> int:
    """GPUs per worker from the template's `nvidia.com/gpu` and the processes per node.

    Powertrain starts one process per GPU (PET_NPROC_PER_NODE = gpusPerReplica)."""
    if asked is not None:
        if isinstance(nproc, int) and nproc != asked:
            notes.append(
                Note(
                    nproc_field,
                    f"{nproc} processes per node not kept: Powertrain starts one per GPU ({asked}, from "
                    f"{where} nvidia.com/gpu)",
                )
            )
        elif isinstance(nproc, str) and nproc == "cpu":
            notes.append(Note(nproc_field, "'cpu' not kept: Powertrain starts one process per GPU"))
        return asked
    if isinstance(nproc, int) and nproc > 0:
        return nproc
    notes.append(
        Note(
            f"{where} nvidia.com/gpu",
            f"not set and processes per node is {nproc or 'unset'!s}: gpusPerReplica set to 1; set it to the GPUs "
            "each worker needs",
        )
    )
    return 1
