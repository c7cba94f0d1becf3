"""Where a worker's GPUs come from: `spec.gpusPerReplica`, or the pod template's own `nvidia.com/gpu`.

Users moving from Kubeflow write GPUs into the trainer container's resources. The operator gives the first
container (the trainer) exactly gpusPerReplica GPUs, so the two must agree: an absent gpusPerReplica takes
the template's number, a different one is refused naming both values (never silently overwritten).

GPUs anywhere else are refused rather than counted: placement, WORLD_SIZE/PET_NPROC_PER_NODE, power caps and
usage all count gpusPerReplica GPUs per worker, so a GPU sidecar would be placed, capped and charged wrongly.
A regular init container may use up to gpusPerReplica GPUs: it runs before the trainer, on the same devices.

These rules read resource quantities, which CEL cannot parse, so they run in the model's validation (operator,
CLI, tests) and not in the API server: a conflicting job is accepted by the API server and marked Invalid.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from powertrain.api import constants as c

_WHOLE: Final = re.compile(r"^[0-9]+$")


class GpuRuleViolation(ValueError):
    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def _amount(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise GpuRuleViolation(f"{c.GPU_RESOURCE}: {value!r} is invalid: must be a whole number of GPUs", field)
    if isinstance(value, str):
        if not _WHOLE.match(value.strip()):
            raise GpuRuleViolation(f"{c.GPU_RESOURCE}: {value!r} is invalid: must be a whole number of GPUs", field)
        value = int(value.strip())
    return int(value)


def container_gpus(container: Any, field: str) -> int | None:
    """The container's nvidia.com/gpu (limits and requests must agree), or None when it asks for none."""
    if not isinstance(container, Mapping):
        return None
    resources = container.get("resources")
    if not isinstance(resources, Mapping):
        return None
    found: dict[str, int] = {}
    for kind in ("limits", "requests"):
        values = resources.get(kind)
        if isinstance(values, Mapping) and c.GPU_RESOURCE in values:
            found[kind] = _amount(values[c.GPU_RESOURCE], f"{field}.resources.{kind}")
    if "limits" in found and "requests" in found and found["limits"] != found["requests"]:
        raise GpuRuleViolation(
            f"{c.GPU_RESOURCE} requests ({found['requests']}) and limits ({found['limits']}) differ: GPUs cannot be "
            "overcommitted, they must be equal",
            f"{field}.resources",
        )
    amounts = list(found.values())
    return amounts[0] if amounts else None


def _name(container: Any) -> str:
    name = container.get("name") if isinstance(container, Mapping) else None
    return f" ({name})" if name else ""


def trainer_gpus(pod_spec: Any) -> int | None:
    """The first container's nvidia.com/gpu, or None; raises GpuRuleViolation when it cannot be read."""
    containers = pod_spec.get("containers") if isinstance(pod_spec, Mapping) else None
    if not isinstance(containers, list) or not containers:
        return None
    return container_gpus(containers[0], "template.spec.containers[0]")


def check_template_gpus(gpus_per_replica: int, explicit: bool, pod_spec: Mapping[str, Any]) -> None:
    """Raise GpuRuleViolation when the template's GPUs disagree with gpusPerReplica or sit outside the trainer."""
    trainer = trainer_gpus(pod_spec)
    if explicit and trainer is not None and trainer != gpus_per_replica:
        raise GpuRuleViolation(
            f"gpusPerReplica is {gpus_per_replica} but template.spec.containers[0]"
            f"{_name(pod_spec['containers'][0])} asks for {c.GPU_RESOURCE}: {trainer}; make them equal, or leave "
            "gpusPerReplica out to use the template's number",
            "gpusPerReplica",
        )
    for i, container in enumerate(pod_spec.get("containers") or []):
        field = f"template.spec.containers[{i}]"
        gpus = container_gpus(container, field)
        if i > 0 and gpus:
            raise GpuRuleViolation(
                f"{field}{_name(container)} asks for {c.GPU_RESOURCE}: {gpus}: only the first container gets GPUs "
                f"(gpusPerReplica of them); GPU sidecars are refused because placement, WORLD_SIZE and accounting "
                "count gpusPerReplica GPUs per worker",
                f"{field}.resources",
            )
    for i, container in enumerate(pod_spec.get("initContainers") or []):
        field = f"template.spec.initContainers[{i}]"
        gpus = container_gpus(container, field)
        if not gpus:
            continue
        sidecar = isinstance(container, Mapping) and container.get("restartPolicy") == "Always"
        if sidecar:
            raise GpuRuleViolation(
                f"{field}{_name(container)} is a sidecar (restartPolicy Always) asking for {c.GPU_RESOURCE}: "
                f"{gpus}: only the first container gets GPUs; GPU sidecars are refused",
                f"{field}.resources",
            )
        if gpus > gpus_per_replica:
            raise GpuRuleViolation(
                f"{field}{_name(container)} asks for {c.GPU_RESOURCE}: {gpus}, more than gpusPerReplica "
                f"({gpus_per_replica}): an init container may use at most the worker's GPUs",
                f"{field}.resources",
            )
