"""The operator's Kubernetes API: typed resources, idempotent writes and relists over the shared transport.

Configuration is found the standard way (in-cluster service account, else KUBECONFIG / ~/.kube/config)
through the `kubernetes` package's loaders; the calls themselves go through powertrain.kubeclient.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from urllib.parse import quote

from powertrain.kubeclient import JSON as JSON
from powertrain.kubeclient import MERGE_PATCH as MERGE_PATCH
from powertrain.kubeclient import ApiError as ApiError
from powertrain.kubeclient import JsonClient, RetryPolicy


@dataclass(frozen=True)
class Resource:
    """Where a kind lives in the REST API."""

    group: str
    version: str
    plural: str
    namespaced: bool

    def path(self, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        if self.namespaced and namespace is not None:
            base += f"/namespaces/{quote(namespace)}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{quote(name)}"
        if sub is not None:
            base += f"/{sub}"
        return base


PODS = Resource("", "v1", "pods", True)
SERVICES = Resource("", "v1", "services", True)
NODES = Resource("", "v1", "nodes", False)
EVENTS = Resource("", "v1", "events", True)
NAMESPACES = Resource("", "v1", "namespaces", False)
TRAINING_JOBS = Resource("powertrain.dev", "v1alpha1", "trainingjobs", True)
POLICIES = Resource("powertrain.dev", "v1alpha1", "clustertrainingpolicies", False)
TELEMETRY = Resource("powertrain.dev", "v1alpha1", "nodetelemetries", False)
CLUSTER_PEERINGS = Resource("kopf.dev", "v1", "clusterkopfpeerings", False)
PEERINGS = Resource("kopf.dev", "v1", "kopfpeerings", True)
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", False)


@dataclass(frozen=True)
class ClusterConfig:
    host: str
    auth_header: str | None = None  # "Bearer <token>" (also what exec/auth-provider plugins yield)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True

    @property
    def token(self) -> str | None:
        if self.auth_header and self.auth_header.lower().startswith("bearer "):
            return self.auth_header[7:]
        return None

    def ssl_context(self) -> ssl.SSLContext | bool:
        if not self.host.startswith("https"):
            return True
        if not self.verify:
            return False
        ctx = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else ssl.create_default_context()
        if self.cert_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx


def load_config(kubeconfig: str | None = None) -> ClusterConfig:
    """In-cluster when running in a pod (and no kubeconfig was named), else the kubeconfig."""
    from kubernetes import client as kclient
    from kubernetes import config as kconfig

    cfg = kclient.Configuration()
    if kubeconfig is None:
        try:
            kconfig.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        except kconfig.ConfigException:
            # The loader's default path is read at import time; honour KUBECONFIG as it is now.
            kconfig.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=os.environ.get("KUBECONFIG") or None, client_configuration=cfg
            )
    else:
        kconfig.load_kube_config(config_file=kubeconfig, client_configuration=cfg)  # type: ignore[no-untyped-call]
    auth = cfg.get_api_key_with_prefix("authorization") or cfg.get_api_key_with_prefix("BearerToken")
    return ClusterConfig(
        host=cfg.host.rstrip("/"),
        auth_header=auth,
        ca_file=cfg.ssl_ca_cert,
        cert_file=cfg.cert_file,
        key_file=cfg.key_file,
        verify=bool(cfg.verify_ssl),
    )


class KubeClient(JsonClient):
    """The operator's client: bounded concurrency, and patient retries (first wait 0.2 s, at most 5 s)."""

    def __init__(self, config: ClusterConfig, *, concurrency: int = 32, retries: int = 4) -> None:
        headers = {"Accept": "application/json", "User-Agent": "powertrain-operator"}
        if config.auth_header:
            headers["Authorization"] = config.auth_header
        super().__init__(
            config.host,
            headers,
            retry=RetryPolicy(retries=retries, first_delay=0.2, max_delay=5.0, max_retry_after=10.0),
            ssl_context=config.ssl_context(),
            concurrency=concurrency,
        )
        self._config = config

    # Verbs -----------------------------------------------------------------------------------------------

    async def get(self, res: Resource, name: str, namespace: str | None = None) -> JSON:
        return await self.request("GET", res.path(namespace, name))

    async def list(
        self, res: Resource, namespace: str | None = None, *, label_selector: str | None = None
    ) -> list[JSON]:
        params = {"labelSelector": label_selector} if label_selector else None
        out = await self.request("GET", res.path(namespace), params=params)
        items: list[JSON] = out.get("items", [])
        return items

    async def create(self, res: Resource, obj: JSON, namespace: str | None = None) -> JSON:
        return await self.request("POST", res.path(namespace), body=obj)

    async def create_or_get(self, res: Resource, obj: JSON, namespace: str | None = None) -> tuple[JSON, bool]:
        """Create, or return the existing object when it is already there (idempotent: 409 = done)."""
        try:
            return await self.create(res, obj, namespace), True
        except ApiError as exc:
            if exc.conflict and exc.reason == "AlreadyExists":
                return await self.get(res, obj["metadata"]["name"], namespace), False
            raise

    async def merge_patch(
        self, res: Resource, name: str, patch: JSON, namespace: str | None = None, *, sub: str | None = None
    ) -> JSON:
        return await self.request("PATCH", res.path(namespace, name, sub), body=patch, content_type=MERGE_PATCH)

    async def delete(
        self,
        res: Resource,
        name: str,
        namespace: str | None = None,
        *,
        grace_period_seconds: int | None = None,
        uid: str | None = None,
        propagation: str | None = None,
    ) -> bool:
        """Delete; False when it was already gone. `uid` deletes only that incarnation of the name."""
        opts: JSON = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_period_seconds is not None:
            opts["gracePeriodSeconds"] = grace_period_seconds
        if uid is not None:
            opts["preconditions"] = {"uid": uid}
        if propagation is not None:
            opts["propagationPolicy"] = propagation
        try:
            await self.request("DELETE", res.path(namespace, name), body=opts)
        except ApiError as exc:
            if exc.not_found or (exc.conflict and uid is not None):
                return False
            raise
        return True

    async def bind(self, namespace: str, pod: str, node: str, uid: str | None = None) -> None:
        binding: JSON = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": pod, "namespace": namespace, **({"uid": uid} if uid else {})},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        await self.request("POST", PODS.path(namespace, pod, "binding"), body=binding)
