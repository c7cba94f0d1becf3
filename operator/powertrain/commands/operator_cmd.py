"""`powertrain operator`: the kopf operator (named operator_cmd: a module named `operator` would shadow stdlib)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from powertrain.commands import SubParsers


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number (0 disables)") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is outside 0..65535 (0 disables)")
    return port


def register(sub: SubParsers) -> None:
    p = sub.add_parser(
        "operator",
        help="run the operator (reconciles TrainingJobs into GPU gangs)",
        description=(
            "Run the Powertrain operator. It finds the API server the standard way: in-cluster service account, "
            "else --kubeconfig, else KUBECONFIG / ~/.kube/config."
        ),
    )
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--namespace", "-n", help="manage TrainingJobs of this namespace only")
    scope.add_argument(
        "--all-namespaces", "-A", action="store_true", help="manage TrainingJobs of every namespace (default)"
    )
    lead = p.add_mutually_exclusive_group()
    lead.add_argument(
        "--peering",
        metavar="NAME",
        help="kopf peering object shared by the replicas; only the leader (highest priority) acts",
    )
    lead.add_argument("--standalone", action="store_true", help="no peering: this process always acts (development)")
    p.add_argument(
        "--priority", type=int, default=None, help="peering priority (default: random, distinct per replica)"
    )
    p.add_argument("--peering-lifetime", type=int, default=15, help="seconds before a silent peer counts as dead")
    p.add_argument("--metrics-port", type=_port, default=8080, help="Prometheus /metrics port (0 disables)")
    p.add_argument("--liveness-port", type=_port, default=8081, help="liveness /healthz port (0 disables)")
    p.add_argument("--log-format", choices=("text", "json"), default="text", help="log line format")
    p.add_argument(
        "--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"), type=str.upper, default="INFO", help="log level"
    )
    p.add_argument("--verbose", "-v", action="store_true", help="debug logging (same as --log-level DEBUG)")
    p.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, then KUBECONFIG, then ~/.kube/config)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import kopf

    from powertrain.controllers.leadership import random_priority
    from powertrain.controllers.runtime import OperatorOptions, run_operator

    if args.peering_lifetime < 2:
        print("powertrain operator: --peering-lifetime must be at least 2 seconds", file=sys.stderr)
        return 2
    level = logging.DEBUG if args.verbose else getattr(logging, args.log_level)
    kopf.configure(
        debug=level == logging.DEBUG,
        verbose=level == logging.DEBUG,
        quiet=level >= logging.WARNING,
        log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.PLAIN,
        log_prefix=False,
    )
    logging.getLogger().setLevel(min(level, logging.INFO) if level < logging.WARNING else level)
    logging.getLogger("powertrain").setLevel(level)
    # kopf logs every handler run per object at INFO; ours are cache feeds, so only their problems matter.
    logging.getLogger("kopf.objects").setLevel(logging.DEBUG if level == logging.DEBUG else logging.WARNING)
    options = OperatorOptions(
        namespace=args.namespace,
        peering=None if args.standalone else args.peering,
        priority=args.priority if args.priority is not None else random_priority(),
        peering_lifetime=args.peering_lifetime,
        metrics_port=args.metrics_port or None,
        liveness_port=args.liveness_port or None,
        kubeconfig=args.kubeconfig,
    )
    from powertrain.kubeconfig_check import kubeconfig_not_found

    missing = kubeconfig_not_found(args.kubeconfig)
    if missing:
        print(f"powertrain operator: {missing}", file=sys.stderr)
        return 2
    try:
        from kubernetes.config import ConfigException

        from powertrain.controllers.kube import load_config

        load_config(args.kubeconfig)
    except (ConfigException, OSError) as exc:
        where = f"--kubeconfig {args.kubeconfig}" if args.kubeconfig else "in-cluster, KUBECONFIG or ~/.kube/config"
        print(f"powertrain operator: cannot find the API server ({where}): {exc}", file=sys.stderr)
        return 2
    from powertrain.controllers.supervisor import CannotContinue

    try:
        asyncio.run(run_operator(options))
    except KeyboardInterrupt:
        return 0
    except CannotContinue as exc:  # said plainly, no traceback: the message says what to change
        logging.getLogger("powertrain.operator").error("operator cannot go on: %s", exc)
        print(f"powertrain operator: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a readable last line instead of a traceback for config errors
        logging.getLogger("powertrain.operator").exception("operator stopped")
        print(f"powertrain operator: {exc}", file=sys.stderr)
        return 1
    return 0
