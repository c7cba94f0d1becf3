"""`powertrain demo`: a sandbox GPU cluster, the real operator, the example TrainingJobs, and a live progress view.

Steps: validate every example against the API models; start the sandbox (2 spines x 2 racks x 4 nodes x 8 GPUs);
run `powertrain operator` as a subprocess against it; apply the policy and the jobs (a job annotated
`demo.powertrain.dev/apply-after-seconds` is applied that much later, to show preemption on a busy cluster);
show a table of jobs until all finish; print a summary. Exit 0 when every job succeeded.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from powertrain.api import ClusterTrainingPolicy, InvalidObject, TrainingJob, parse
from powertrain.commands import SubParsers

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
APPLY_AFTER = "demo.powertrain.dev/apply-after-seconds"
TERMINAL = ("Succeeded", "Failed")


def register(sub: SubParsers) -> None:
    p = sub.add_parser("demo", help="run the end-to-end demo on a local sandbox cluster")
    p.add_argument("--examples", type=Path, default=EXAMPLES, help="directory of example manifests")
    p.add_argument("--timeout", type=float, default=240.0, help="give up after this many seconds")
    p.add_argument("--plain", action="store_true", help="periodic plain tables instead of a live view")
    p.add_argument("--validate-only", action="store_true", help="only check the example manifests")
    p.set_defaults(handler=run)


@dataclass
class Manifest:
    path: Path
    doc: dict[str, Any]
    delay: float = 0.0

    @property
    def name(self) -> str:
        return str((self.doc.get("metadata") or {}).get("name", "?"))


def load_examples(directory: Path) -> tuple[list[Manifest], list[str]]:
    """Every document of every example, checked against the models (the rules the API server enforces)."""
    manifests: list[Manifest] = []
    errors: list[str] = []
    for path in sorted(directory.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            try:
                if doc.get("kind") == "ClusterTrainingPolicy":
                    parse(ClusterTrainingPolicy, doc)
                else:
                    parse(TrainingJob, doc)
            except InvalidObject as exc:
                errors.append(f"{path.name}: {exc}")
                continue
            annotations = (doc.get("metadata") or {}).get("annotations") or {}
            try:
                delay = float(annotations.get(APPLY_AFTER, 0))
            except ValueError:
                errors.append(f"{path.name}: metadata.annotations[{APPLY_AFTER}]: not a number of seconds")
                continue
            manifests.append(Manifest(path, doc, delay))
    return manifests, errors


# The progress view -----------------------------------------------------------------------------------------

COLUMNS = ("JOB", "QUEUE", "PRIO", "PHASE", "READY", "GPUS", "PLACEMENT", "RESTARTS", "MESSAGE")


def job_row(job: dict[str, Any]) -> tuple[str, ...]:
    meta = job.get("metadata") or {}
    spec = job.get("spec") or {}
    status = job.get("status") or {}
    replicas = int(spec.get("replicas", 1))
    gpus_each = int(spec.get("gpusPerReplica", 1))
    placement = status.get("placement") or {}
    # The efficiency verdict leads the message rather than taking a column: the table must fit 80 columns.
    verdict = (status.get("efficiency") or {}).get("verdict")
    message = str(status.get("message") or "")
    if verdict:
        message = f"{verdict}: {message}" if message else str(verdict)
    where = ""
    if placement.get("domain"):
        nodes = placement.get("nodes") or []
        where = f"{placement.get('level')} {placement.get('domain')} ({len(set(nodes))} nodes)"
    return (
        str(meta.get("name", "?")),
        str(spec.get("queue", "default")),
        str(spec.get("priority", 0)),
        str(status.get("phase") or "-"),
        f"{status.get('readyReplicas') or 0}/{replicas}",
        f"{status.get('gpus') or 0}/{replicas * gpus_each}",
        where or "-",
        str(status.get("restarts") or 0),
        message,
    )


GAP = 2  # spaces between columns, in both views
WRAPS = ("PLACEMENT", "MESSAGE")  # the columns that wrap onto more lines; the others are short and never cut
MIN_MESSAGE = 30
MIN_PLACEMENT = 12


@dataclass(frozen=True)
class Layout:
    widths: tuple[int, ...]
    """Width of each column shown (MESSAGE last, unless the messages go below the table)."""
    message_below: bool


def layout(rows: list[tuple[str, ...]], width: int) -> Layout:
    """Column widths for a terminal `width` wide: the short columns as wide as their longest value, PLACEMENT
    and MESSAGE wrapped into what is left; on a terminal too narrow for a readable MESSAGE column, each job's
    message goes on its own lines below the table instead (never cut)."""
    natural = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(COLUMNS)]
    placement_i, message_i = COLUMNS.index("PLACEMENT"), COLUMNS.index("MESSAGE")
    fixed = sum(w for i, w in enumerate(natural) if COLUMNS[i] not in WRAPS)
    widths = list(natural)
    rest = width - fixed - GAP * (len(COLUMNS) - 1)
    if rest >= MIN_PLACEMENT + MIN_MESSAGE:
        widths[placement_i] = max(MIN_PLACEMENT, min(natural[placement_i], rest - MIN_MESSAGE))
        widths[message_i] = rest - widths[placement_i]
        return Layout(tuple(widths), message_below=False)
    rest += GAP + natural[message_i]  # no MESSAGE column
    widths[placement_i] = max(MIN_PLACEMENT, min(natural[placement_i], rest - natural[message_i]))
    return Layout(tuple(widths[:message_i]), message_below=True)


def _terminal_width() -> int:
    import shutil

    return shutil.get_terminal_size((120, 24)).columns


def plain_table(rows: list[tuple[str, ...]], *, width: int | None = None) -> str:
    """The jobs as text columns fitting `width` (default: the terminal's); long values wrap, nothing is cut."""
    import textwrap

    shape = layout(rows, width or _terminal_width())
    shown = len(shape.widths)
    lines = ["  ".join(h.ljust(w) for h, w in zip(COLUMNS, shape.widths, strict=False)).rstrip()]
    for r in rows:
        cells = [textwrap.wrap(v, w, break_on_hyphens=False) or [""] for v, w in zip(r, shape.widths, strict=False)]
        for k in range(max(len(c) for c in cells)):
            parts = [(c[k] if k < len(c) else "").ljust(w) for c, w in zip(cells, shape.widths, strict=True)]
            lines.append("  ".join(parts).rstrip())
        if shape.message_below and r[shown:] and r[-1]:
            lines += textwrap.wrap(
                r[-1], (width or _terminal_width()) - 4, initial_indent="    ", subsequent_indent="    "
            )
    return "\n".join(lines)


def event_lines(events: list[dict[str, Any]], since: float | None = None) -> list[str]:
    """The operator's decisions on the demo's jobs, oldest first: "12s  urgent-eval  Placed  Placed 4×8 GPUs ..."."""
    out = []
    ours = [e for e in events if (e.get("source") or {}).get("component") == "powertrain-operator"]
    ours.sort(key=lambda e: (str(e.get("lastTimestamp") or ""), str((e.get("metadata") or {}).get("name"))))
    for e in ours:
        stamp = _epoch(str(e.get("lastTimestamp") or ""))
        when = f"{stamp - since:4.0f}s" if since is not None and stamp is not None else "     "
        name = str((e.get("involvedObject") or {}).get("name", "?"))
        out.append(f"{when}  {name:<17} {e.get('reason', ''):<26} {e.get('message', '')}")
    return out


def _epoch(stamp: str) -> float | None:
    from datetime import datetime

    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def rich_table(rows: list[tuple[str, ...]], elapsed: float, cluster: str, events: list[str] | None = None) -> Any:
    colors = {
        "Running": "green",
        "Succeeded": "bold green",
        "Failed": "bold red",
        "Queued": "yellow",
        "Pending": "yellow",
        "Suspended": "magenta",
    }
    title = f"Powertrain demo — {cluster} — {elapsed:4.0f}s"
    return JobTable(rows, title, events or [], colors)


class JobTable:
    """The live view, laid out for the width the console has at each refresh (see `layout`)."""

    def __init__(self, rows: list[tuple[str, ...]], title: str, events: list[str], colors: dict[str, str]) -> None:
        self.rows, self.title, self.events, self.colors = rows, title, events, colors

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from rich import box
        from rich.table import Table
        from rich.text import Text

        shape = layout(self.rows, options.max_width)
        table = Table(title=self.title, box=box.SIMPLE_HEAD, collapse_padding=True, show_edge=False, pad_edge=False)
        for h, w in zip(COLUMNS, shape.widths, strict=False):
            table.add_column(h, width=w, no_wrap=h not in WRAPS, overflow="fold")
        for r in self.rows:
            style = self.colors.get(r[3], "")
            cells = [*r[:3], f"[{style}]{r[3]}[/]" if style else r[3], *r[4:]]
            table.add_row(*cells[: len(shape.widths)])
        yield table
        if shape.message_below:
            for r in self.rows:
                if r[-1]:
                    line = Text(f"{r[0]}: ", style="bold")
                    line.append(r[-1])
                    yield line
        if self.events:
            yield Text("Latest decisions:", style="bold")
            yield Text("\n".join(self.events[-8:]))


# Running it ------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    manifests, errors = load_examples(args.examples)
    for error in errors:
        print(error, file=sys.stderr)
    if errors:
        return 1
    jobs = [m for m in manifests if m.doc.get("kind") == "TrainingJob"]
    if not jobs:
        print(f"no example TrainingJobs in {args.examples}", file=sys.stderr)
        return 1
    if args.validate_only:
        for m in jobs:
            print(f"{m.path.name}: {m.name} is valid")
        return 0
    live = sys.stdout.isatty() and not args.plain
    return asyncio.run(_demo(manifests, deadline=args.timeout, live=live))


async def _demo(manifests: list[Manifest], *, deadline: float, live: bool) -> int:
    from powertrain.sandbox.cluster import Sandbox, SandboxConfig

    workdir = Path(tempfile.mkdtemp(prefix="powertrain-demo-"))
    config = SandboxConfig(nodes=16, gpus_per_node=8, gpu_model="NVIDIA-H200", topology="zone=1,spine=2,rack=2")
    cluster = "16 nodes x 8 NVIDIA-H200 in 2 spines x 2 racks"
    print(f"Starting the sandbox cluster ({cluster}) ...", flush=True)
    with Sandbox(config) as sandbox:
        kubeconfig = workdir / "kubeconfig"
        sandbox.write_kubeconfig(kubeconfig)
        log_path = workdir / "operator.log"
        with log_path.open("w") as log_file:
            operator = subprocess.Popen(  # noqa: ASYNC220 - started once; it runs beside the loop
                [
                    sys.executable,
                    "-m",
                    "powertrain",
                    "operator",
                    "--kubeconfig",
                    str(kubeconfig),
                    "--standalone",
                    "--metrics-port",
                    "0",
                    "--liveness-port",
                    "0",
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            try:
                print(f"Operator running (pid {operator.pid}, log {log_path}). Applying the examples ...", flush=True)
                return await _drive(
                    kubeconfig, manifests, deadline=deadline, live=live, cluster=cluster, operator=operator
                )
            finally:
                operator.terminate()
                try:
                    operator.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    operator.kill()


async def _drive(
    kubeconfig: Path,
    manifests: list[Manifest],
    *,
    deadline: float,
    live: bool,
    cluster: str,
    operator: subprocess.Popen[bytes],
) -> int:
    from powertrain.controllers.kube import EVENTS, POLICIES, TRAINING_JOBS, KubeClient, load_config

    client = KubeClient(load_config(str(kubeconfig)))
    start = time.monotonic()
    wall_start = time.time()
    events: list[str] = []
    pending = sorted(manifests, key=lambda m: m.delay)
    names = [m.name for m in manifests if m.doc.get("kind") == "TrainingJob"]
    rows: list[tuple[str, ...]] = []
    live_view: Any = None
    if live:
        from rich.live import Live

        live_view = Live(rich_table([], 0, cluster), refresh_per_second=4, transient=True)  # the summary follows
        live_view.start()
    last_plain = -10.0
    try:
        while True:
            elapsed = time.monotonic() - start
            while pending and pending[0].delay <= elapsed:
                m = pending.pop(0)
                doc = dict(m.doc)
                if doc.get("kind") == "ClusterTrainingPolicy":
                    await client.create_or_get(POLICIES, doc)
                else:
                    doc.setdefault("metadata", {}).setdefault("namespace", "default")
                    await client.create_or_get(TRAINING_JOBS, doc, "default")
            listed = {j["metadata"]["name"]: j for j in await client.list(TRAINING_JOBS, "default")}
            rows = [job_row(listed[n]) for n in names if n in listed]
            events = event_lines(await client.list(EVENTS, "default"), since=wall_start)
            if live_view is not None:
                live_view.update(rich_table(rows, elapsed, cluster, events))
            elif elapsed - last_plain >= 5:
                print(f"\n--- {elapsed:.0f}s ---\n{plain_table(rows)}", flush=True)
                last_plain = elapsed
            done = not pending and len(rows) == len(names) and all(r[3] in TERMINAL for r in rows)
            if done or elapsed > deadline or operator.poll() is not None:
                break
            await asyncio.sleep(0.5)
    finally:
        if live_view is not None:
            live_view.stop()
        await client.close()
    return _summary(rows, events, time.monotonic() - start, deadline, operator)


def _summary(
    rows: list[tuple[str, ...]],
    events: list[str],
    elapsed: float,
    timeout: float,
    operator: subprocess.Popen[bytes],
) -> int:
    print("\nWhat the operator decided (Kubernetes Events on the TrainingJobs):")
    print("\n".join(events) or "(no events)")
    print(f"\n{plain_table(rows)}\n")
    ok = all(r[3] == "Succeeded" for r in rows) and bool(rows)
    if operator.poll() is not None:
        print(f"The operator exited early (code {operator.returncode}); see its log.")
        return 1
    if elapsed > timeout and not ok:
        print(f"Timed out after {timeout:.0f}s with jobs still running.")
        return 1
    restarts = sum(int(r[7]) for r in rows)
    preemptions = sum(1 for line in events if "PreemptedByHigherPriority" in line)
    verdict = "all jobs succeeded" if ok else "some jobs did not succeed"
    print(
        f"Demo finished in {elapsed:.0f}s: {verdict}; {len(rows)} jobs, {preemptions} preemption(s), "
        f"{restarts} gang restart(s)."
    )
    return 0 if ok else 1
