"""Say plainly when the kubeconfig a command would read does not exist (the Kubernetes client says only
"Invalid kube-config file. No configuration found."). Standard library only: the agent uses it too."""

from __future__ import annotations

import os
from pathlib import Path

IN_CLUSTER_ENV = "KUBERNETES_SERVICE_HOST"
DEFAULT_KUBECONFIG = "~/.kube/config"


def kubeconfig_not_found(flag_value: str | None, flag: str = "--kubeconfig") -> str | None:
    """A message naming the missing file and where its path came from, or None when a file (or in-cluster
    configuration) is there to read. The order is the loaders': the flag, in-cluster, KUBECONFIG, the default."""
    if flag_value:
        path = Path(flag_value).expanduser()
        return None if path.is_file() else f"kubeconfig file {path} not found (given with {flag})"
    if os.environ.get(IN_CLUSTER_ENV):
        return None
    env = os.environ.get("KUBECONFIG")
    if env:
        paths = [Path(p).expanduser() for p in env.split(os.pathsep) if p]
        if any(p.is_file() for p in paths):
            return None
        listed = ", ".join(str(p) for p in paths)
        return f"kubeconfig file {listed} not found (named by the KUBECONFIG environment variable)"
    default = Path(DEFAULT_KUBECONFIG).expanduser()
    if default.is_file():
        return None
    return (
        f"kubeconfig file {default} not found, KUBECONFIG is not set, and this is not a pod with a service "
        f"account; pass {flag} FILE or set KUBECONFIG"
    )
