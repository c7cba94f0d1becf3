"""Defaults and validation of the workload kinds, as the API server applies them on write.

[Deployments; ReplicaSet; DaemonSet; StatefulSets; Jobs — each kind's "Writing a ... Spec" section]:
- Deployment: replicas 1, strategy RollingUpdate with maxSurge/maxUnavailable 25 %, revisionHistoryLimit 10,
  progressDeadlineSeconds 600; ReplicaSet and StatefulSet replicas 1; DaemonSet updateStrategy RollingUpdate
  with maxUnavailable 1; StatefulSet podManagementPolicy OrderedReady.
- Job: parallelism 1, completions 1, backoffLimit 6, completionMode NonIndexed, suspend false, and (unless
  manualSelector) a generated selector on `batch.kubernetes.io/controller-uid`, whose labels the template gets.
- `spec.selector` is required, must select the template's labels, and is immutable for apps/v1 kinds;
  a Job's template restartPolicy must be Never or OnFailure; other workloads' must be Always.
"""

from __future__ import annotations

from typing import Any

from powertrain.sandbox.selectors import selector_from_match

Cause = dict[str, str]
APPS_KEYS = frozenset({"deployments.apps", "replicasets.apps", "statefulsets.apps", "daemonsets.apps"})
JOB_KEY = "jobs.batch"
JOB_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


def admits(key: str) -> bool:
    return key in APPS_KEYS or key == JOB_KEY or key == "replicationcontrollers"


def _go_map(labels: dict[str, str]) -> str:
    inner = ", ".join(f'"{k}":"{v}"' for k, v in sorted(labels.items()))
    return f"map[string]string{{{inner}}}"


def admit(key: str, obj: dict[str, Any], old: dict[str, Any] | None, causes: list[Cause]) -> None:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    template = spec.setdefault("template", {})
    tmeta = template.setdefault("metadata", {})
    tspec = template.setdefault("spec", {})
    if key == JOB_KEY:
        _default_job(obj, spec, tmeta)
    elif key == "deployments.apps":
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            strategy["type"] = "RollingUpdate"
            ru = strategy.setdefault("rollingUpdate", {})
            ru.setdefault("maxSurge", "25%")
            ru.setdefault("maxUnavailable", "25%")
    elif key == "daemonsets.apps":
        spec.setdefault("revisionHistoryLimit", 10)
        strategy = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            strategy["type"] = "RollingUpdate"
            ru = strategy.setdefault("rollingUpdate", {})
            ru.setdefault("maxUnavailable", 1)
            ru.setdefault("maxSurge", 0)
    elif key == "statefulsets.apps":
        spec.setdefault("replicas", 1)
        spec.setdefault("podManagementPolicy", "OrderedReady")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    else:  # replicasets, replicationcontrollers
        spec.setdefault("replicas", 1)
    if isinstance(tspec, dict):
        tspec.setdefault("restartPolicy", "Never" if key == JOB_KEY else "Always")
        tspec.setdefault("dnsPolicy", "ClusterFirst")
        tspec.setdefault("schedulerName", "default-scheduler")
        tspec.setdefault("terminationGracePeriodSeconds", 30)
        # The template gets the pod defaults its pods would (Pod v1 defaulting applies to templates too).
        for c in (tspec.get("containers") or []) + (tspec.get("initContainers") or []):
            if not isinstance(c, dict):
                continue
            tag = str(c.get("image") or "").rsplit("/", 1)[-1]
            c.setdefault("imagePullPolicy", "IfNotPresent" if ":" in tag and not tag.endswith(":latest") else "Always")
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            for port in c.get("ports") or []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")
        policy = tspec.get("restartPolicy")
        allowed = ("Never", "OnFailure") if key == JOB_KEY else ("Always",)
        if policy not in allowed:
            supported = ", ".join(f'"{a}"' for a in allowed)
            causes.append(
                {
                    "reason": "FieldValueNotSupported",
                    "field": "spec.template.spec.restartPolicy",
                    "message": f'Unsupported value: "{policy}": supported values: {supported}',
                }
            )
        if not tspec.get("containers"):
            causes.append(
                {"reason": "FieldValueRequired", "field": "spec.template.spec.containers", "message": "Required value"}
            )
    selector = spec.get("selector")
    if key == "replicationcontrollers":
        labels = tmeta.get("labels") or {}
        if not selector:
            spec["selector"] = dict(labels)
        matches = selector_from_match({"matchLabels": spec["selector"]}).matches(labels)
    else:
        if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
            causes.append({"reason": "FieldValueRequired", "field": "spec.selector", "message": "Required value"})
            return
        matches = selector_from_match(selector).matches(tmeta.get("labels") or {})
    if not matches:
        causes.append(
            {
                "reason": "FieldValueInvalid",
                "field": "spec.template.metadata.labels",
                "message": f"Invalid value: {_go_map(tmeta.get('labels') or {})}: `selector` does not match "
                "template `labels`",
            }
        )
    if old is not None and key in APPS_KEYS and (old.get("spec") or {}).get("selector") != spec.get("selector"):
        causes.append(
            {"reason": "FieldValueInvalid", "field": "spec.selector", "message": "Invalid value: field is immutable"}
        )


def _default_job(obj: dict[str, Any], spec: dict[str, Any], tmeta: dict[str, Any]) -> None:
    spec.setdefault("parallelism", 1)
    spec.setdefault("completions", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("manualSelector", None)
    if spec.get("manualSelector"):
        return
    uid = obj["metadata"].get("uid", "")
    name = obj["metadata"].get("name", "")
    labels = tmeta.setdefault("labels", {})
    for k, v in ((JOB_UID_LABEL, uid), ("controller-uid", uid), (JOB_NAME_LABEL, name), ("job-name", name)):
        labels.setdefault(k, v)
    spec.setdefault("selector", {"matchLabels": {JOB_UID_LABEL: uid}})
    if spec.get("manualSelector") is None:
        spec.pop("manualSelector")
