"""`powertrain demo`: sandbox + operator + example TrainingJobs, with a live progress view.

Until the sandbox and the operator exist, the demo does the part that is built: it checks every example
manifest against the API models (the same rules the API server enforces through the generated CRDs) and
shows what each job asks for.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from powertrain.api import ClusterTrainingPolicy, InvalidObject, TrainingJob, parse
from powertrain.commands import SubParsers

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def register(sub: SubParsers) -> None:
    p = sub.add_parser("demo", help="run the end-to-end demo on a local sandbox cluster")
    p.add_argument("--examples", type=Path, default=EXAMPLES, help="directory of example manifests")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    files = sorted(args.examples.glob("*.yaml"))
    if not files:
        print(f"no example manifests in {args.examples}", file=sys.stderr)
        return 1
    failures = 0
    print(f"{'JOB':<20} {'REPLICAS':>8} {'GPUS':>5} {'TOPOLOGY':<20} {'QUEUE':<10} {'PRIORITY':>8}")
    for path in files:
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            try:
                if doc.get("kind") == "ClusterTrainingPolicy":
                    parse(ClusterTrainingPolicy, doc)
                    continue
                job = parse(TrainingJob, doc)
            except InvalidObject as exc:
                failures += 1
                print(f"{path.name}: {exc}", file=sys.stderr)
                continue
            s = job.spec
            name = str(job.metadata.get("name", "?"))
            topo = f"{s.topology.mode} {s.topology.level}"
            print(
                f"{name:<20} {s.replicas:>8} {s.replicas * s.gpus_per_replica:>5} {topo:<20} "
                f"{s.queue:<10} {s.priority:>8}"
            )
    print("\nThe sandbox and operator are not built yet: the demo validated the example manifests only.")
    return 1 if failures else 0
