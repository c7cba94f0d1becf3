"""Command line of the node agent: `powertrain agent ...` (or `python -m powertrain_agent ...`)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from powertrain.argsuggest import parse_args
from powertrain_agent import __version__
from powertrain_agent.collectors import BACKENDS, Collector, CollectorUnavailable

log = logging.getLogger("powertrain_agent")

DEFAULT_METRICS_PORT = 9402
# As in powertrain_agent.podresources, repeated so `--help` needs no gRPC import.
DEFAULT_POD_RESOURCES_SOCKET = Path("/var/lib/kubelet/pod-resources/kubelet.sock")


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than zero")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} must lie within 0..65535 (0 disables the exporter)")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--node-name",
        default=os.environ.get("NODE_NAME"),
        help="this node's name (default: $NODE_NAME, set from spec.nodeName in the DaemonSet)",
    )
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default=os.environ.get("POWERTRAIN_AGENT_BACKEND", "nvml"),
        help="nvml: real GPUs; sim: simulated GPUs driven by the node's pods; replay: a recorded trace",
    )
    p.add_argument(
        "--replay-file",
        type=Path,
        default=None,
        help="CSV trace for --backend replay, columns as nvml_trace.csv (default: the packaged H200 recording)",
    )
    p.add_argument("--gpus", type=int, default=8, help="number of GPUs for --backend sim or replay (default 8)")
    p.add_argument("--interval", type=_positive, default=1.0, help="seconds between fast samples (default 1)")
    p.add_argument(
        "--slow-interval",
        type=_positive,
        default=5.0,
        help="seconds between slow samples: energy, PCIe, ECC, NVLink, processes, network (default 5)",
    )
    p.add_argument(
        "--metrics-port",
        type=_port,
        default=DEFAULT_METRICS_PORT,
        help=f"Prometheus exporter port (default {DEFAULT_METRICS_PORT}; 0 disables it)",
    )
    p.add_argument("--metrics-address", default="0.0.0.0", help="address the exporter listens on")
    p.add_argument(
        "--dcgm-compat",
        action="store_true",
        help="also export dcgm-exporter's names, units and labels (DCGM_FI_*) for the readings both have, "
        "for DCGM dashboards and alerts on nodes that run this agent instead of dcgm-exporter",
    )
    p.add_argument("--dry-run-power", action="store_true", help="log power-limit decisions, never touch the GPUs")
    p.add_argument(
        "--no-kube",
        action="store_true",
        help="do not talk to the API server: export metrics only (no reports, no power requests)",
    )
    p.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: in-cluster, else $KUBECONFIG)")
    p.add_argument(
        "--report-min-interval",
        type=_positive,
        default=20.0,
        help="fewest seconds between NodeTelemetry writes (default 20)",
    )
    p.add_argument(
        "--report-max-interval",
        type=_positive,
        default=60.0,
        help="most seconds between NodeTelemetry writes, a heartbeat (default 60)",
    )
    p.add_argument(
        "--health-clear-seconds",
        type=_positive,
        default=300.0,
        help="a GPU is healthy again after this long without a fault (default 300)",
    )
    p.add_argument("--proc-root", type=Path, default=Path("/proc"), help="host /proc (for cgroups and net/dev)")
    p.add_argument(
        "--sys-root", type=Path, default=Path("/sys"), help="host /sys (InfiniBand counters, cgroup v2 io.stat)"
    )
    p.add_argument(
        "--cgroup-root",
        type=Path,
        default=None,
        help="the host's cgroup v2 tree, for each pod's io.stat (default: SYS_ROOT/fs/cgroup)",
    )
    p.add_argument(
        "--pod-resources-socket",
        type=Path,
        default=DEFAULT_POD_RESOURCES_SOCKET,
        help="the kubelet's pod-resources gRPC socket, which tells which pod holds which GPU "
        f"(default {DEFAULT_POD_RESOURCES_SOCKET}; where it is absent, GPUs are attributed through their "
        "processes' cgroups; 'none' never asks the kubelet)",
    )
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def make_collector(args: argparse.Namespace) -> Collector:
    if args.backend == "sim":
        from powertrain_agent.collectors.sim import SimCollector

        return SimCollector(args.gpus, seed=args.node_name)
    if args.backend == "replay":
        from powertrain_agent.collectors.replay import ReplayCollector
        from powertrain_agent.data import H200_TRACE

        trace = H200_TRACE if args.replay_file is None else args.replay_file
        return ReplayCollector(trace, args.gpus, seed=f"replay-{args.node_name}")
    from powertrain_agent.collectors.nvml import NvmlCollector

    return NvmlCollector()


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.node_name:
        print("powertrain agent: --node-name is required (or set NODE_NAME)", file=sys.stderr)
        return 2
    if args.report_max_interval < args.report_min_interval:
        print("powertrain agent: --report-max-interval must be at least --report-min-interval", file=sys.stderr)
        return 2
    if args.gpus < 1 or args.gpus > 64:
        print(f"powertrain agent: --gpus {args.gpus}: must lie within 1..64", file=sys.stderr)
        return 2

    from powertrain_agent.agent import Agent, AgentConfig

    try:
        collector = make_collector(args)
        collector.open()
    except CollectorUnavailable as exc:
        print(f"powertrain agent: {exc}", file=sys.stderr)
        return 1

    writer = None
    kube: Any = None
    if not args.no_kube:
        from powertrain.kubeconfig_check import kubeconfig_not_found
        from powertrain_agent.kube import KubeClient, KubeUnavailable, load_client
        from powertrain_agent.reporter import StatusWriter

        missing = kubeconfig_not_found(args.kubeconfig)
        if missing:
            print(f"powertrain agent: {missing}; or pass --no-kube to run only the exporter", file=sys.stderr)
            collector.close()
            return 2
        try:
            kube = KubeClient(load_client(args.kubeconfig))
        except KubeUnavailable as exc:
            print(f"powertrain agent: {exc}", file=sys.stderr)
            collector.close()
            return 1
        writer = StatusWriter(kube, args.node_name)

    config = AgentConfig(
        node=args.node_name,
        interval_s=args.interval,
        slow_interval_s=args.slow_interval,
        dry_run_power=args.dry_run_power,
        proc_root=args.proc_root,
        sys_root=args.sys_root,
        report_min_interval_s=args.report_min_interval,
        report_max_interval_s=args.report_max_interval,
        health_clear_s=args.health_clear_seconds,
        cgroup_root=args.cgroup_root,
        pod_resources_socket=None if str(args.pod_resources_socket) == "none" else args.pod_resources_socket,
    )
    agent = Agent(config, collector, writer)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: shutting down", signum)
        agent.stop_event.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    server = None
    if args.metrics_port:
        server = start_exporter(agent, args.metrics_address, args.metrics_port, dcgm_compat=args.dcgm_compat)
    if kube is not None:
        start_watches(agent, kube, args.node_name)
    log.info(
        "powertrain agent %s on node %s: backend %s, %s, metrics on :%s",
        __version__,
        args.node_name,
        collector.name,
        "dry-run power" if args.dry_run_power else "power capping on",
        args.metrics_port,
    )
    try:
        agent.run()
    finally:
        agent.shutdown()
        if server is not None:
            server.shutdown()
    return 0


def start_exporter(agent: Any, address: str, port: int, dcgm_compat: bool = False) -> Any:
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.process_collector import ProcessCollector

    from powertrain_agent.metrics import AgentCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(agent.state.snapshot, __version__, dcgm_compat=dcgm_compat))
    ProcessCollector(registry=registry)  # process_cpu_seconds_total, process_resident_memory_bytes of the agent
    server, _thread = start_http_server(port, address, registry=registry)
    return server


def start_watches(agent: Any, kube: Any, node: str) -> None:
    from powertrain_agent.kube import ListWatch, name_key, pod_info, pod_key, power_requests, power_requests_expiry

    def on_pods(items: dict[str, dict[str, Any]]) -> None:
        pods = {}
        for uid, obj in items.items():
            info = pod_info(obj)
            if info is not None and info.phase not in ("Succeeded", "Failed"):
                pods[uid] = info
        agent.set_pods(pods)

    def on_telemetry(items: dict[str, dict[str, Any]]) -> None:
        requests, problems = power_requests(items.get(node))
        expires_at, problem = power_requests_expiry(items.get(node))
        for p in [*problems, *([problem] if problem else [])]:
            log.warning("NodeTelemetry/%s: %s (ignored)", node, p)
        agent.set_power_requests(requests, expires_at)

    for watcher in (
        ListWatch("pods-watch", kube.pods_collection(), f"spec.nodeName={node}", pod_key, on_pods, agent.stop_event),
        ListWatch(
            "telemetry-watch",
            kube.telemetry_collection(),
            f"metadata.name={node}",
            name_key,
            on_telemetry,
            agent.stop_event,
        ),
    ):
        watcher.start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="powertrain-agent", description="Powertrain node agent")
    add_arguments(parser)
    return run(parse_args(parser, argv))
