"""What a job's pod template may not ask for: host access (the policy's podSecurity switch) and, always, the
operator's own service account.

Creating a TrainingJob creates pods in its namespace from the template its author wrote, so whoever may create
TrainingJobs may run those pods. The checks follow the Pod Security Standards' baseline profile, so a cluster
that also enforces Pod Security Admission on job namespaces (recommended) sees the same decisions earlier.
Each problem names the field, the value and what is allowed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

from powertrain.api.policy import BASELINE_CAPABILITIES, PodSecurity

SYSTEM_PRIORITY_CLASSES: Final = frozenset({"system-node-critical", "system-cluster-critical"})
_HOST_NAMESPACES: Final = ("hostNetwork", "hostPID", "hostIPC")
_CONTAINER_LISTS: Final = ("initContainers", "containers", "ephemeralContainers")
_FIELD: Final = "spec.template.spec"


def _containers(pod_spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for kind in _CONTAINER_LISTS:
        items = pod_spec.get(kind)
        for i, container in enumerate(items if isinstance(items, list) else []):
            if isinstance(container, Mapping):
                yield f"{_FIELD}.{kind}[{i}]", container


def _security(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    ctx = obj.get("securityContext")
    return ctx if isinstance(ctx, Mapping) else {}


def service_account_problem(
    pod_spec: Mapping[str, Any], namespace: str, operator_account: tuple[str, str] | None
) -> str | None:
    """A job may never run as the operator: it would get the operator's cluster-wide permissions."""
    if operator_account is None or namespace != operator_account[0]:
        return None
    for field in ("serviceAccountName", "serviceAccount"):
        if pod_spec.get(field) == operator_account[1]:
            return (
                f"{_FIELD}.{field}: {operator_account[1]!r} is refused: it is the operator's own service account, "
                "and a job may never run with the operator's permissions"
            )
    return None


def pod_security_problems(pod_spec: Mapping[str, Any], policy: PodSecurity) -> list[str]:
    """Every baseline-profile field the template uses, or [] when the policy does not enforce it."""
    if not policy.enforce:
        return []
    why = "refused by the ClusterTrainingPolicy's podSecurity"
    out: list[str] = []
    for name in _HOST_NAMESPACES:
        if pod_spec.get(name) is True:
            out.append(f"{_FIELD}.{name}: true is {why} (host namespaces)")
    volumes = pod_spec.get("volumes")
    for i, volume in enumerate(volumes if isinstance(volumes, list) else []):
        if isinstance(volume, Mapping) and volume.get("hostPath") is not None:
            path = volume["hostPath"].get("path") if isinstance(volume["hostPath"], Mapping) else None
            out.append(f"{_FIELD}.volumes[{i}].hostPath: {path!r} is {why} (use a PersistentVolumeClaim)")
    priority_class = pod_spec.get("priorityClassName")
    if priority_class in SYSTEM_PRIORITY_CLASSES:
        out.append(f"{_FIELD}.priorityClassName: {priority_class!r} is {why} (reserved for the cluster's own pods)")
    seccomp = _security(pod_spec).get("seccompProfile")
    if isinstance(seccomp, Mapping) and seccomp.get("type") == "Unconfined":
        out.append(f"{_FIELD}.securityContext.seccompProfile.type: 'Unconfined' is {why}")
    allowed = set(BASELINE_CAPABILITIES) | set(policy.allowed_capabilities)
    for field, container in _containers(pod_spec):
        ctx = _security(container)
        if ctx.get("privileged") is True:
            out.append(f"{field}.securityContext.privileged: true is {why}")
        caps = ctx.get("capabilities")
        added = caps.get("add") if isinstance(caps, Mapping) else None
        extra = sorted(
            {str(c) for c in (added if isinstance(added, list) else [])} - allowed,
        )
        if extra:
            out.append(
                f"{field}.securityContext.capabilities.add: {', '.join(extra)} {'is' if len(extra) == 1 else 'are'} "
                f"{why} (allowed: the baseline set and allowedCapabilities {sorted(policy.allowed_capabilities)})"
            )
        if ctx.get("procMount") == "Unmasked":
            out.append(f"{field}.securityContext.procMount: 'Unmasked' is {why}")
        seccomp = ctx.get("seccompProfile")
        if isinstance(seccomp, Mapping) and seccomp.get("type") == "Unconfined":
            out.append(f"{field}.securityContext.seccompProfile.type: 'Unconfined' is {why}")
        ports = container.get("ports")
        for j, port in enumerate(ports if isinstance(ports, list) else []):
            if isinstance(port, Mapping) and port.get("hostPort"):
                out.append(f"{field}.ports[{j}].hostPort: {port['hostPort']} is {why} (host ports)")
    return out
