"""A standard kubeconfig for the sandbox: kubectl, kopf and the kubernetes client read it unmodified."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any, Final

import yaml

CONTEXT: Final = "powertrain-sandbox"


def kubeconfig(
    url: str, token: str, *, ca_pem: bytes | None = None, name: str = CONTEXT, namespace: str = "default"
) -> dict[str, Any]:
    """One cluster (with its CA certificate for https), one user (a bearer token) and one context, current."""
    cluster: dict[str, Any] = {"server": url}
    if ca_pem:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}}],
        "current-context": name,
    }


def write_kubeconfig(path: Path, url: str, token: str, *, ca_pem: bytes | None = None, name: str = CONTEXT) -> Path:
    """Write the kubeconfig readable by its owner only (it holds the token); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(kubeconfig(url, token, ca_pem=ca_pem, name=name), sort_keys=False)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)
    return path
