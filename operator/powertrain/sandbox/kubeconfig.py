"""A standard kubeconfig for the sandbox: kubectl, kopf and the kubernetes client read it unmodified."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Final

import yaml

CONTEXT: Final = "powertrain-sandbox"


def kubeconfig(url: str, token: str, *, name: str = CONTEXT, namespace: str = "default") -> dict[str, Any]:
    """One cluster, one user (a bearer token) and one context, current."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": name, "cluster": {"server": url}}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}}],
        "current-context": name,
    }


def write_kubeconfig(path: Path, url: str, token: str, *, name: str = CONTEXT) -> Path:
    """Write the kubeconfig readable by its owner only (it holds the token); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(kubeconfig(url, token, name=name), sort_keys=False)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)
    return path
