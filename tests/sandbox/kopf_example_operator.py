"""A tiny kopf operator in the style of kopf's own examples, run against the sandbox by test_apiserver_kopf.py:
a create handler that writes status, a delete handler (so kopf adds its finalizer), and peering."""

from __future__ import annotations

import os
from typing import Any

import kopf
from kubernetes import client as k8s
from kubernetes.config import new_client_from_config


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    # kopf 1.45's default client-based login reads api_key["authorization"], but kubernetes 37 stores the token
    # under "BearerToken", so kopf would connect without credentials; its own kubeconfig parser works with both.
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.watching.server_timeout = 5


@kopf.on.create("test.dev", "v1", "gizmos")
def created(spec: dict[str, Any], patch: kopf.Patch, name: str, body: kopf.Body, **_: Any) -> dict[str, Any]:
    kopf.info(body, reason="Provisioned", message=f"gizmo {name} of size {spec.get('size', 0)} is ready")
    patch.status["phase"] = "Ready"
    patch.status["size"] = spec.get("size", 0) * 2
    return {"greeting": f"hello {name}"}


@kopf.on.delete("test.dev", "v1", "gizmos")
def deleted(name: str, namespace: str, **_: Any) -> None:
    api = new_client_from_config(config_file=os.environ["KUBECONFIG"])
    k8s.CoreV1Api(api).create_namespaced_config_map(namespace, {"metadata": {"name": f"deleted-{name}"}})
    api.close()
