"""The entrypoint of a sandbox pod's real process (powertrain.sandbox.process_runner): `powertrain ARGS`, with the
pod's service-account directory where the Kubernetes client's in-cluster loader looks for it.

A real kubelet mounts the projected token at /var/run/secrets/kubernetes.io/serviceaccount; an unprivileged
process cannot mount there, so this entrypoint points the in-cluster path constants of both client paths (the
`kubernetes` library the operator's kopf uses, and the agent's own `powertrain_agent.kubehttp`) at the
directory the runner wrote, then runs the ordinary `powertrain` command line. The product's code is unchanged:
it loads in-cluster config exactly as it does in a cluster.
"""

from __future__ import annotations

import os
import runpy
import sys


def main() -> None:
    sa_dir = os.environ.pop("POWERTRAIN_SANDBOX_SERVICEACCOUNT_DIR", "")
    if sa_dir:
        from kubernetes.config import incluster_config

        incluster_config.SERVICE_TOKEN_FILENAME = os.path.join(sa_dir, "token")
        incluster_config.SERVICE_CERT_FILENAME = os.path.join(sa_dir, "ca.crt")
        from pathlib import Path

        from powertrain_agent import kubehttp

        kubehttp.SERVICE_ACCOUNT_DIR = Path(sa_dir)
        kubehttp.SERVICE_TOKEN_FILENAME = Path(sa_dir, "token")
        kubehttp.SERVICE_CERT_FILENAME = Path(sa_dir, "ca.crt")
    sys.argv = ["powertrain", *sys.argv[1:]]
    runpy.run_module("powertrain", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
