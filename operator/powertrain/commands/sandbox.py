"""`powertrain sandbox up|down`: a local Kubernetes-API-compatible cluster with simulated GPU nodes.

`up` runs in the foreground until Ctrl-C (or SIGTERM); `up --detach` starts the same thing as a background
process and returns once it serves. Either way the state directory (`--state-dir`, default
$POWERTRAIN_SANDBOX_DIR or ./.sandbox) holds `kubeconfig`, `state.json` (pid, url, kubeconfig) while it runs,
and `sandbox.log` for a detached one. `down` stops the detached sandbox recorded there.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from powertrain.commands import SubParsers
from powertrain.data import fleet_path

if TYPE_CHECKING:  # the sandbox is imported only when it runs, so `powertrain --help` stays fast
    from powertrain.sandbox.cluster import Sandbox, SandboxConfig

STATE_FILE = "state.json"
LOG_FILE = "sandbox.log"
DETACH_WAIT_SECONDS = 300.0
STOP_WAIT_SECONDS = 30.0


def default_state_dir() -> Path:
    return Path(os.environ.get("POWERTRAIN_SANDBOX_DIR") or ".sandbox")


def register(sub: SubParsers) -> None:
    p = sub.add_parser(
        "sandbox",
        help="run a local sandbox cluster with simulated GPU nodes",
        description="A local Kubernetes-API-compatible cluster with simulated GPU nodes, kubelet and scheduler.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    up = actions.add_parser("up", help="start the sandbox (foreground, or --detach)")
    up.add_argument("--port", type=int, default=0, help="API server port on 127.0.0.1 (default: a free one)")
    up.add_argument("--kubeconfig", type=Path, help="where to write the kubeconfig (default: STATE_DIR/kubeconfig)")
    up.add_argument("--nodes", type=int, default=4, help="number of GPU nodes (default 4)")
    up.add_argument("--gpus-per-node", type=int, default=8, help="GPUs per node (default 8)")
    up.add_argument("--gpu-model", default="NVIDIA-H200", help="nvidia.com/gpu.product label value")
    up.add_argument(
        "--topology",
        default="",
        help="domains per parent, e.g. zone=1,spine=2,rack=4,nvlink=2 (default: one zone, spine and rack)",
    )
    up.add_argument(
        "--cluster",
        type=fleet_path,
        metavar="FILE",
        help="nodes from a .csv (Alibaba fleet columns) or .yaml node file; `alibaba`: the packaged Alibaba PAI "
        "fleet (1,213 GPU nodes)",
    )
    up.add_argument("--start-delay", type=float, default=0.2, help="seconds from bound to Running (default 0.2)")
    up.add_argument(
        "--pod-resources",
        action="store_true",
        help="serve the kubelet pod-resources gRPC API per node (a unix socket each, for sim agents' "
        "--pod-resources-socket; the directory is printed and recorded in the state file)",
    )
    up.add_argument(
        "--no-crds",
        action="store_true",
        help="start without Powertrain's CRDs (for `helm install` of the chart, which installs them)",
    )
    up.add_argument("--detach", action="store_true", help="run in the background; stop with `sandbox down`")
    up.add_argument("--state-dir", type=Path, default=None, help="default: $POWERTRAIN_SANDBOX_DIR or ./.sandbox")
    up.set_defaults(handler=run_up)
    down = actions.add_parser("down", help="stop the sandbox started with `up --detach`")
    down.add_argument("--state-dir", type=Path, default=None, help="default: $POWERTRAIN_SANDBOX_DIR or ./.sandbox")
    down.set_defaults(handler=run_down)
    p.set_defaults(handler=lambda args: _usage(p))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _fail(message: str, code: int = 2) -> int:
    print(f"powertrain sandbox: {message}", file=sys.stderr)
    return code


def _read_state(state_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((state_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():  # a recycled pid must not be mistaken for our sandbox
        try:
            return b"sandbox" in cmdline.read_bytes()
        except OSError:
            return False
    return True


def _check_flags(args: argparse.Namespace) -> str | None:
    if not 0 <= args.port <= 65535:
        return f"--port: {args.port} is invalid: must lie within 0..65535 (0 picks a free port)"
    if not 0 <= args.start_delay <= 3600:
        return f"--start-delay: {args.start_delay} is invalid: must lie within 0..3600 seconds"
    return None


def run_up(args: argparse.Namespace) -> int:
    from powertrain.sandbox.nodes import NodeConfigError

    problem = _check_flags(args)
    if problem:
        return _fail(problem)
    state_dir = (args.state_dir or default_state_dir()).resolve()
    running = _read_state(state_dir)
    if running and _alive(int(running.get("pid", 0))):
        return _fail(
            f"a sandbox is already running (pid {running['pid']}, {running.get('url')}); "
            f"stop it with `powertrain sandbox down{_state_flag(args)}`",
            1,
        )
    try:
        config = _config(args, state_dir)
        config.node_list()  # refuse bad flags or files here, before anything starts
    except NodeConfigError as exc:
        return _fail(str(exc))
    if args.detach:
        return _detach(args, state_dir)
    return _foreground(config, state_dir)


def _state_flag(args: argparse.Namespace) -> str:
    return f" --state-dir {args.state_dir}" if args.state_dir else ""


def _config(args: argparse.Namespace, state_dir: Path) -> SandboxConfig:
    from powertrain.sandbox.cluster import SandboxConfig
    from powertrain.sandbox.kubelet import KubeletConfig

    return SandboxConfig(
        nodes=args.nodes,
        gpus_per_node=args.gpus_per_node,
        gpu_model=args.gpu_model,
        topology=args.topology,
        cluster_file=args.cluster,
        port=args.port,
        kubelet=KubeletConfig(start_delay=args.start_delay),
        kubeconfig_path=(args.kubeconfig or state_dir / "kubeconfig").resolve(),
        pod_resources=args.pod_resources,
        apply_crds=not args.no_crds,
    )


def _foreground(config: SandboxConfig, state_dir: Path) -> int:
    from powertrain.sandbox.cluster import Sandbox

    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sandbox = Sandbox(config)
    try:
        try:
            sandbox.start()
        except OSError as exc:
            return _fail(f"cannot start the API server on port {config.port}: {exc.strerror or exc}", 1)
        state_dir.mkdir(parents=True, exist_ok=True)
        state = {
            "pid": os.getpid(),
            "url": sandbox.url,
            "kubeconfig": str(sandbox.kubeconfig_path),
            "nodes": sandbox.timings.node_count,
            "startupSeconds": round(sandbox.timings.total, 3),
        }
        if sandbox.pod_resources is not None:
            state["podResourcesDir"] = str(sandbox.pod_resources.directory)
        tmp = state_dir / f".{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(state))
        tmp.replace(state_dir / STATE_FILE)
        _print_ready(sandbox, config)
        print("Press Ctrl-C to stop.", flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        print("Stopping the sandbox ...", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        sandbox.stop()
        recorded = _read_state(state_dir)
        if recorded and recorded.get("pid") == os.getpid():
            (state_dir / STATE_FILE).unlink(missing_ok=True)


def _print_ready(sandbox: Sandbox, config: SandboxConfig) -> None:
    specs = config.node_list()
    gpus = sum(spec.gpus for spec in specs)
    timings = sandbox.timings
    print(
        f"Powertrain sandbox is up at {sandbox.url}: {len(specs)} nodes, {gpus} GPUs "
        f"(started in {timings.total:.1f} s; nodes created in {timings.nodes:.1f} s)",
        flush=True,
    )
    print(f"kubeconfig: {sandbox.kubeconfig_path}")
    print(f"  export KUBECONFIG={sandbox.kubeconfig_path}")
    print("  kubectl get nodes")
    print("Next, start the operator against it (in another terminal), then submit the examples:")
    print(f"  {operator_command(sandbox.kubeconfig_path)}")
    print("  kubectl apply -f examples/", flush=True)
    if sandbox.pod_resources is not None:
        first = specs[0].name if specs else "NODE"
        print(f"pod-resources sockets: {sandbox.pod_resources.directory}/<node>.sock, e.g. a sim agent:")
        print(
            f"  NODE_NAME={first} powertrain agent --backend sim --kubeconfig {sandbox.kubeconfig_path} "
            f"--pod-resources-socket {sandbox.pod_resources_socket(first)}",
            flush=True,
        )


def operator_command(kubeconfig: Path) -> str:
    """The command line that runs the operator against this sandbox (printed by `sandbox up`)."""
    return f"powertrain operator --kubeconfig {shlex.quote(str(kubeconfig))} --standalone"


def _detach(args: argparse.Namespace, state_dir: Path) -> int:
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    argv = [*_rebuild_argv(args), "--state-dir", str(state_dir)]
    log_path = state_dir / LOG_FILE
    with open(log_path, "wb") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "powertrain", *argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + DETACH_WAIT_SECONDS
    while time.monotonic() < deadline:
        state = _read_state(state_dir)
        if state and state.get("pid") == child.pid:
            print(log_path.read_text().split("Press Ctrl-C")[0], end="")
            print(f"Running in the background (pid {child.pid}, log {log_path}).")
            print(f"Stop it with: powertrain sandbox down{_state_flag(args)}", flush=True)
            return 0
        if child.poll() is not None:
            tail = log_path.read_text()[-2000:]
            return _fail(f"the sandbox exited during start-up (code {child.returncode}):\n{tail}", 1)
        time.sleep(0.1)
    child.terminate()
    return _fail(f"the sandbox did not come up within {DETACH_WAIT_SECONDS:.0f} s; see {log_path}", 1)


def _rebuild_argv(args: argparse.Namespace) -> list[str]:
    """The foreground `sandbox up` command line equivalent to the parsed flags (for the detached child)."""
    argv = ["sandbox", "up", "--port", str(args.port), "--nodes", str(args.nodes)]
    argv += ["--gpus-per-node", str(args.gpus_per_node), "--gpu-model", args.gpu_model]
    argv += ["--start-delay", str(args.start_delay)]
    if args.topology:
        argv += ["--topology", args.topology]
    if args.cluster:
        argv += ["--cluster", str(Path(args.cluster).resolve())]
    if args.kubeconfig:
        argv += ["--kubeconfig", str(Path(args.kubeconfig).resolve())]
    if args.pod_resources:
        argv.append("--pod-resources")
    if args.no_crds:
        argv.append("--no-crds")
    return argv


def run_down(args: argparse.Namespace) -> int:
    state_dir = (args.state_dir or default_state_dir()).resolve()
    state = _read_state(state_dir)
    if state is None:
        print(f"No detached sandbox is recorded in {state_dir}; nothing to stop.")
        return 0
    pid = int(state.get("pid", 0))
    if pid <= 0 or not _alive(pid):
        (state_dir / STATE_FILE).unlink(missing_ok=True)
        print(f"The sandbox recorded in {state_dir} (pid {pid}) is not running any more; cleaned up.")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT_SECONDS
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
        (state_dir / STATE_FILE).unlink(missing_ok=True)
        return _fail(f"the sandbox (pid {pid}) did not stop within {STOP_WAIT_SECONDS:.0f} s and was killed", 1)
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    print(f"Stopped the sandbox (pid {pid}, {state.get('url')}).")
    return 0
