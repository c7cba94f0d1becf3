"""Every number of the API at its extremes, through the core pass.

Each numeric field of TrainingJob, ClusterTrainingPolicy and NodeTelemetry (found by walking the models, so a
new field is covered without touching this file) must have both bounds; its minimum and maximum must go
through a whole pass (scheduling, lifecycle, power requests) without setting any job aside; one past a bound
must be refused with a message naming the field, and the generated CRD must carry the same bounds.
"""

from __future__ import annotations

import copy
import itertools
import types
import typing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import annotated_types as at
import pytest
from core_builders import T0, cluster, job, policy, running, snap, worker_pods
from pydantic import BaseModel

from powertrain.api.common import OpenModel
from powertrain.api.crdgen import CRDS, crd_manifest
from powertrain.api.limits import MAX_SECONDS
from powertrain.api.policy import ClusterTrainingPolicy
from powertrain.api.telemetry import NodeTelemetry
from powertrain.api.trainingjob import TrainingJob
from powertrain.api.validation import InvalidObject, parse
from powertrain.core import conditions as cond
from powertrain.core.lifecycle import decide_all
from powertrain.core.power import power_limit_changes
from powertrain.core.scheduler import schedule

NOW = datetime(2026, 1, 2, tzinfo=UTC)
LATER = NOW + timedelta(seconds=MAX_SECONDS + 86_400)  # past every deadline, TTL and window


@dataclass(frozen=True)
class NumberField:
    kind: type[BaseModel]
    path: tuple[str | int, ...]
    is_float: bool
    lower: float | None
    lower_strict: bool
    upper: float | None
    upper_strict: bool

    @property
    def dotted(self) -> str:
        out = ""
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
        return out


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[0]
        elif origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        else:
            return annotation


def number_fields(
    model: type[BaseModel], kind: type[BaseModel], prefix: tuple[str | int, ...] = ()
) -> list[NumberField]:
    out: list[NumberField] = []
    for name, info in model.model_fields.items():
        wire = info.alias or name
        if wire == "metadata" or (issubclass(model, OpenModel) and name not in model.model_fields):
            continue
        annotation = _unwrap(info.annotation)
        path = (*prefix, wire)
        if typing.get_origin(annotation) is list:
            item = _unwrap(typing.get_args(annotation)[0])
            if isinstance(item, type) and issubclass(item, BaseModel) and not issubclass(item, OpenModel):
                out += number_fields(item, kind, (*path, 0))
            continue
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if not issubclass(annotation, OpenModel) or annotation.model_fields:
                out += number_fields(annotation, kind, path)
            continue
        if annotation in (int, float):
            lower = upper = None
            lower_strict = upper_strict = False
            for meta in info.metadata:
                if isinstance(meta, at.Ge):
                    lower = meta.ge  # type: ignore[arg-type]
                elif isinstance(meta, at.Gt):
                    lower, lower_strict = meta.gt, True  # type: ignore[arg-type]
                elif isinstance(meta, at.Le):
                    upper = meta.le  # type: ignore[arg-type]
                elif isinstance(meta, at.Lt):
                    upper, upper_strict = meta.lt, True  # type: ignore[arg-type]
            out.append(NumberField(kind, path, annotation is float, lower, lower_strict, upper, upper_strict))
    return out


FIELDS = [f for kind in (TrainingJob, ClusterTrainingPolicy, NodeTelemetry) for f in number_fields(kind, kind)]


def _value(field: NumberField, end: str) -> int | float:
    if end == "min":
        assert field.lower is not None
        if field.lower_strict:
            return 1e-6 if field.is_float else int(field.lower) + 1
        return field.lower if field.is_float else int(field.lower)
    assert field.upper is not None
    if field.upper_strict:
        return field.upper - 1e-6 if field.is_float else int(field.upper) - 1
    return field.upper if field.is_float else int(field.upper)


def _outside(field: NumberField, end: str) -> int | float:
    if end == "min":
        assert field.lower is not None
        return field.lower if field.lower_strict else field.lower - max(1, abs(field.lower) * 1e-6)
    assert field.upper is not None
    return field.upper if field.upper_strict else field.upper + max(1, abs(field.upper) * 1e-6)


def _set(obj: dict[str, Any], path: tuple[str | int, ...], value: Any) -> None:
    node: Any = obj
    for part, nxt in itertools.pairwise(path):
        node = node[part] if isinstance(part, int) else node.setdefault(part, [] if isinstance(nxt, int) else {})
    node[path[-1]] = value


def _with(obj: dict[str, Any], field: NumberField, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    path = field.path
    if path[:2] == ("spec", "elastic"):
        out["spec"].pop("elastic", None)
        if path[2] == "minReplicas":
            out["spec"]["elastic"] = {"minReplicas": value, "maxReplicas": 100_000}
        elif path[2] == "maxReplicas":
            out["spec"]["elastic"] = {"minReplicas": 1, "maxReplicas": value}
        else:  # a field beside the bounds: the job keeps a valid size
            out["spec"]["elastic"] = {"minReplicas": 1, "maxReplicas": 1, path[2]: value}
            return out
        out["spec"]["replicas"] = value
        return out
    _set(out, path, value)
    return out


def _job_variants() -> list[dict[str, Any]]:
    status_extras = {
        "conditions": [{"type": "Queued", "status": "True", "reason": "Submitted"}],
        "efficiency": {"verdict": "Healthy", "since": T0, "windowSeconds": 120},
    }
    pending = job("x", replicas=1, gpus=8, run_policy={"activeDeadlineSeconds": 60, "ttlSecondsAfterFinished": 60})
    pending["spec"]["power"] = {"capWatts": 300}
    pending["status"] = {"phase": "Queued", **status_extras}
    run = running(copy.deepcopy(pending), ["s0-r0-n0"], **status_extras)
    done = copy.deepcopy(pending)
    done["status"] = {"phase": "Succeeded", "startTime": T0, "completionTime": T0, **status_extras}
    return [pending, run, done]


def _telemetry_base() -> dict[str, Any]:
    return {
        "apiVersion": "powertrain.dev/v1alpha1",
        "kind": "NodeTelemetry",
        "metadata": {"name": "s0-r0-n0"},
        "spec": {"powerLimits": [{"uuid": "GPU-0", "watts": 300}]},
        "status": {
            "timestamp": T0,
            "gpus": [
                {"index": 0, "uuid": "GPU-0", "healthy": True, "pod": {"namespace": "default", "name": "llm-worker-0"}}
            ],
            "network": [{"interface": "eth0"}],
            "pods": [{"namespace": "default", "name": "llm-worker-0", "gpus": 1}],
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def _policy_base() -> dict[str, Any]:
    out = policy(
        power={"clusterWatts": 100_000, "domainWatts": 10_000, "overrides": [{"domain": "s0-r0", "watts": 5_000}]},
        queues=[{"name": "default"}],
    )
    out["spec"]["cost"] = {"gpuHour": [{"model": "NVIDIA-H200", "price": 3.5}], "energyPerKwh": 0.2}
    out["status"] = {
        "conditions": [{"type": "Ready", "status": "True"}],
        "budgets": [
            {"level": "rack", "domain": "s0-r0", "budgetWatts": 5_000, "drawWatts": 100.0, "headroomWatts": 4_900.0}
        ],
    }
    return out


def _run_pass(s: Any) -> None:
    for now in (NOW, LATER):
        decisions = schedule(s, now)
        plans = decide_all(s, now, decisions)
        power_limit_changes(s)
        assert not decisions.failed, decisions.failed
        aside = [p.key for p in plans for e in p.events if e.reason == cond.REASON_EVALUATION_FAILED]
        assert not aside, aside
        assert not s.invalid_jobs, s.invalid_jobs
        other = next(p for p in plans if p.key[1] == "other")
        assert other.status.phase in ("Running", "Queued")


def _through_core(field: NumberField, value: Any) -> None:
    other = job("other", replicas=1, gpus=1)
    if field.kind is TrainingJob:
        for base in _job_variants():
            obj = _with(base, field, value)
            parse(TrainingJob, obj)
            pods = worker_pods(obj) if obj["status"]["phase"] == "Running" else []
            _run_pass(snap(cluster(), [obj, other], pods=pods))
    elif field.kind is ClusterTrainingPolicy:
        obj = _with(_policy_base(), field, value)
        parse(ClusterTrainingPolicy, obj)
        capped = running(job("capped", replicas=1), ["s0-r0-n0"])
        capped["spec"]["power"] = {"capWatts": 300}
        s = snap(cluster(), [capped, other], pods=worker_pods(capped))
        assert s.set_policy(obj) is None
        _run_pass(s)
    else:
        obj = _with(_telemetry_base(), field, value)
        parse(NodeTelemetry, obj)
        s = snap(cluster(), [other], telemetry=[obj])
        assert "s0-r0-n0" in s.telemetry, "a report within bounds was dropped"
        _run_pass(s)


def test_every_number_of_the_api_is_bounded_on_both_sides() -> None:
    assert len(FIELDS) > 40
    unbounded = [f"{f.kind.__name__} {f.dotted}" for f in FIELDS if f.lower is None or f.upper is None]
    assert unbounded == []


@pytest.mark.parametrize("end", ["min", "max"])
@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f"{f.kind.__name__}:{f.dotted}")
def test_extreme_values_go_through_the_core_pass(field: NumberField, end: str) -> None:
    _through_core(field, _value(field, end))


@pytest.mark.parametrize("end", ["min", "max"])
@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f"{f.kind.__name__}:{f.dotted}")
def test_one_past_a_bound_is_refused_naming_the_field(field: NumberField, end: str) -> None:
    base = {TrainingJob: _job_variants()[1], ClusterTrainingPolicy: _policy_base(), NodeTelemetry: _telemetry_base()}
    obj = _with(base[field.kind], field, _outside(field, end))
    with pytest.raises(InvalidObject) as err:
        parse(field.kind, obj)
    assert field.dotted in str(err.value)


def _schema_at(field: NumberField) -> dict[str, Any]:
    info = next(i for i in CRDS if i.kind == field.kind.__name__)
    node: dict[str, Any] = crd_manifest(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for part in field.path:
        node = node["items"] if isinstance(part, int) else node["properties"][part]
    return node


@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f"{f.kind.__name__}:{f.dotted}")
def test_the_crd_carries_the_same_bounds(field: NumberField) -> None:
    schema = _schema_at(field)
    assert schema["maximum"] == field.upper
    assert schema["minimum"] == field.lower
