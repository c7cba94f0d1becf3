"""`powertrain convert`: turn Kubeflow PyTorchJobs and Trainer TrainJobs into TrainingJobs.

The TrainingJobs go to stdout (or --output) as YAML; what could not be carried over goes to stderr, one line per
field with why. Priority class values come from the cluster (--kubeconfig) or from --priority-class flags.
Exit 0 when every document converted, 1 when one could not be, 2 when the input could not be read.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import yaml

from powertrain.commands import SubParsers
from powertrain.kubeflow import Conversion, ConvertError, convert_document
from powertrain.kubeflow.convert import priority_class_names

PRIORITY_CLASS_APIS = (
    # Kubernetes PriorityClass first: a pod template's priorityClassName names one. Kueue's
    # WorkloadPriorityClass (the kueue.x-k8s.io/priority-class label) has a `value` too.
    ("scheduling.k8s.io", "v1", "priorityclasses"),
    ("kueue.x-k8s.io", "v1beta1", "workloadpriorityclasses"),
)


def _priority_flag(text: str) -> tuple[str, int]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE (e.g. high-priority=1000)")
    try:
        return name, int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: {value!r} is not a whole number") from None


def register(sub: SubParsers) -> None:
    p = sub.add_parser(
        "convert",
        help="convert Kubeflow PyTorchJobs / TrainJobs into TrainingJobs",
        description=(
            "Write the TrainingJob equivalent of each Kubeflow PyTorchJob (kubeflow.org/v1) or Trainer TrainJob "
            "(trainer.kubeflow.org/v1alpha1) to stdout as YAML, and list on stderr every field that could not be "
            "carried over, with why. Each TrainingJob is validated against the API before it is written."
        ),
    )
    p.add_argument(
        "-f",
        "--filename",
        action="append",
        required=True,
        metavar="FILE",
        help="YAML file with one or more documents ('-' reads stdin); repeatable",
    )
    p.add_argument("-o", "--output", type=Path, default=None, metavar="FILE", help="write the YAML here, not stdout")
    p.add_argument(
        "--priority-class",
        action="append",
        type=_priority_flag,
        default=[],
        metavar="NAME=VALUE",
        help="value of a priority class, for spec.priority (repeatable; wins over --kubeconfig)",
    )
    p.add_argument(
        "--kubeconfig",
        default=None,
        metavar="FILE",
        help="look priority classes up in this cluster (PriorityClass, then Kueue WorkloadPriorityClass)",
    )
    p.set_defaults(handler=run)


def _documents(sources: list[str]) -> list[tuple[str, Any]]:
    docs: list[tuple[str, Any]] = []
    for source in sources:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
        label = "stdin" if source == "-" else source
        for i, doc in enumerate(yaml.safe_load_all(text)):
            if doc is None:
                continue
            if isinstance(doc, dict) and doc.get("kind") == "List":
                docs.extend(
                    (f"{label} document {i + 1} item {j + 1}", item) for j, item in enumerate(doc.get("items") or [])
                )
            else:
                docs.append((f"{label} document {i + 1}", doc))
    return docs


async def _from_cluster(kubeconfig: str, names: set[str]) -> dict[str, int | str]:
    from powertrain.controllers.kube import ApiError, KubeClient, Resource, load_config

    found: dict[str, int | str] = {}
    client = KubeClient(load_config(kubeconfig), retries=1)
    try:
        for name in sorted(names):
            reasons = []
            for group, version, plural in PRIORITY_CLASS_APIS:
                try:
                    obj = await client.get(Resource(group, version, plural, False), name)
                except ApiError as exc:
                    reasons.append(f"{plural}.{group}: {'not found' if exc.not_found else exc}")
                    continue
                value = obj.get("value")
                if isinstance(value, int) and not isinstance(value, bool):
                    found[name] = value
                    break
                reasons.append(f"{plural}.{group}: has no whole-number value")
            else:
                found[name] = "; ".join(reasons)
    finally:
        await client.close()
    return found


def lookup_priorities(names: set[str], flags: list[tuple[str, int]], kubeconfig: str | None) -> dict[str, int | str]:
    table: dict[str, int | str] = dict(flags)
    missing = names - table.keys()
    if missing and kubeconfig is not None:
        table.update(asyncio.run(_from_cluster(kubeconfig, missing)))
    return table


def run(args: argparse.Namespace) -> int:
    try:
        docs = _documents(args.filename)
    except OSError as exc:
        print(f"powertrain convert: cannot read {exc.filename!r}: {exc.strerror}", file=sys.stderr)
        return 2
    except yaml.YAMLError as exc:
        print(f"powertrain convert: not valid YAML: {exc}", file=sys.stderr)
        return 2
    if args.kubeconfig is not None and not Path(args.kubeconfig).is_file():
        print(f"powertrain convert: --kubeconfig {args.kubeconfig!r}: not found", file=sys.stderr)
        return 2
    names = set().union(*(priority_class_names(doc) for _, doc in docs if isinstance(doc, dict))) if docs else set()
    try:
        lookup = lookup_priorities(names, args.priority_class, args.kubeconfig)
    except Exception as exc:  # a cluster that cannot be reached: say so, convert nothing half-resolved
        print(f"powertrain convert: cannot look priority classes up via {args.kubeconfig}: {exc}", file=sys.stderr)
        return 2
    converted: list[Conversion] = []
    failed = 0
    for where, doc in docs:
        try:
            conversion = convert_document(doc, lookup)
        except ConvertError as exc:
            print(f"error: {where}: {exc}", file=sys.stderr)
            failed += 1
            continue
        converted.append(conversion)
        for note in conversion.notes:
            print(f"{conversion.source}: {note}", file=sys.stderr)
    text = yaml.safe_dump_all([c.job for c in converted], sort_keys=False, default_flow_style=False)
    if args.output is not None:
        try:
            args.output.write_text(text, encoding="utf-8")
        except OSError as exc:
            print(f"powertrain convert: --output: cannot write {str(args.output)!r}: {exc.strerror}", file=sys.stderr)
            return 2
    elif converted:
        sys.stdout.write(text)
    if not docs:
        print("powertrain convert: no documents in the input", file=sys.stderr)
        return 1
    return 1 if failed else 0
