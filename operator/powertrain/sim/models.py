"""The simulator's TrainingJob objects as models, each job's spec validated once.

The snapshot parses every TrainingJob it is given (pydantic plus the spec's CEL rules), which made up about
40 % of a replay: the simulator rewrites each job's status several times (queued, running, preempted,
moved) while its spec never changes. `JobModels` validates a job's spec the first time it sees it (and again
only if the spec differs; jobs with the same spec, e.g. trace jobs of one model and size, share one
validated spec), validates each status on its own, and builds the same `TrainingJob` that
`parse(TrainingJob, obj)` gives (the top-level model has no rules across spec and status), which the snapshot
then takes as is (`upsert_job(parsed=...)`). Anything unexpected goes through the snapshot's own parse.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from powertrain.api import constants as c
from powertrain.api.trainingjob import TrainingJob, TrainingJobSpec, TrainingJobStatus
from powertrain.api.validation import InvalidObject, parse
from powertrain.core.snapshot import ClusterSnapshot

_TOP_LEVEL = frozenset({"apiVersion", "kind", "metadata", "spec", "status"})


class JobModels:
    def __init__(self, snapshot: ClusterSnapshot) -> None:
        self.snapshot = snapshot
        self._specs: dict[str, tuple[dict[str, Any], TrainingJobSpec]] = {}
        self._by_content: dict[str, TrainingJobSpec] = {}
        """Validated specs by their content: trace jobs of one model and size share one."""

    def upsert(self, obj: dict[str, Any]) -> None:
        """`snapshot.upsert_job(obj)`, without validating a spec already validated."""
        self.snapshot.upsert_job(obj, parsed=self.model(obj))

    def model(self, obj: Mapping[str, Any]) -> TrainingJob | None:
        """What `parse(TrainingJob, obj)` gives; None when the object is not the simulator's plain shape or does
        not validate (the snapshot then parses it itself and reports why)."""
        meta, spec_wire = obj.get("metadata"), obj.get("spec")
        if (
            not set(obj) <= _TOP_LEVEL
            or obj.get("apiVersion") != c.API_VERSION
            or obj.get("kind") != "TrainingJob"
            or not isinstance(meta, dict)
            or not isinstance(spec_wire, dict)
        ):
            return None
        name = str(meta.get("name"))
        known = self._specs.get(name)
        try:
            if known is None or known[0] != spec_wire:
                content = json.dumps(spec_wire, sort_keys=True)
                spec = self._by_content.get(content)
                if spec is None:
                    spec = self._by_content[content] = parse(TrainingJob, {**obj, "status": None}).spec
                # Kept as given: the simulator builds a new dict for every object and never changes one it gave.
                known = self._specs[name] = (spec_wire, spec)
            status_wire = obj.get("status")
            status = None if status_wire is None else TrainingJobStatus.model_validate(status_wire)
        except (InvalidObject, ValueError):
            return None
        fields: dict[str, Any] = {
            "kind": "TrainingJob",
            "api_version": c.API_VERSION,
            "metadata": dict(meta),
            "spec": known[1],
        }
        if "status" in obj:
            fields["status"] = status
        return TrainingJob.model_construct(**fields)
