"""One Kubeflow document → one validated TrainingJob (or a ConvertError saying why not)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from powertrain.api import InvalidObject, TrainingJob, parse
from powertrain.kubeflow import pytorchjob, trainjob
from powertrain.kubeflow.common import (
    KUEUE_PRIORITY_LABEL,
    Conversion,
    ConvertError,
    Note,
    PriorityLookup,
    describe,
    mapping,
)

KINDS = {
    ("PyTorchJob", pytorchjob.API_VERSION): pytorchjob.convert,
    ("TrainJob", trainjob.API_VERSION): trainjob.convert,
}
SUPPORTED = ", ".join(f"{kind} ({version})" for kind, version in KINDS)


def priority_class_names(doc: Mapping[str, Any]) -> set[str]:
    """Every priority class a document names (to look their values up before converting)."""
    names: set[str] = set()
    labels = mapping(mapping(doc.get("metadata")).get("labels"))
    if labels.get(KUEUE_PRIORITY_LABEL):
        names.add(str(labels[KUEUE_PRIORITY_LABEL]))
    spec = mapping(doc.get("spec"))
    scheduling = mapping(mapping(spec.get("runPolicy")).get("schedulingPolicy"))
    if scheduling.get("priorityClass"):
        names.add(str(scheduling["priorityClass"]))
    for replica in mapping(spec.get("pytorchReplicaSpecs")).values():
        pod = mapping(mapping(mapping(replica).get("template")).get("spec"))
        if pod.get("priorityClassName"):
            names.add(str(pod["priorityClassName"]))
    return names


def convert_document(doc: Any, lookup: PriorityLookup) -> Conversion:
    if not isinstance(doc, Mapping):
        raise ConvertError(f"not a Kubernetes object (a YAML mapping), got {type(doc).__name__}")
    kind, version = doc.get("kind"), doc.get("apiVersion")
    converter = KINDS.get((str(kind), str(version)))
    if converter is None:
        same_kind = [v for k, v in KINDS if k == kind]
        if same_kind:
            raise ConvertError(f"apiVersion {version!r} of {kind} is not supported; convert reads {same_kind[0]}")
        raise ConvertError(f"kind {kind!r} ({version}) cannot be converted; convert reads {SUPPORTED}")
    source = describe(doc)
    notes: list[Note] = []
    try:
        job = converter(doc, lookup, notes)
    except ConvertError as exc:
        raise ConvertError(f"{source}: {exc}") from None
    try:
        parse(TrainingJob, job)
    except InvalidObject as exc:
        raise ConvertError(f"{source}: the converted TrainingJob is not valid: {exc}") from None
    return Conversion(source, job, notes)
