"""Kubernetes API access for the agent (blocking client, used only from the agent's worker threads).

The agent watches two things, each with a field selector so the API server sends only what concerns this
node: the pods bound to it (spec.nodeName) and its own NodeTelemetry (metadata.name). Each watch is
list-then-watch with resourceVersion, re-listing after errors or a 410 Gone, with back-off.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from powertrain.api.constants import GPU_RESOURCE, GROUP, JOB_NAME_LABEL, VERSION
from powertrain_agent.readings import PodInfo
from powertrain_agent.reporter import ApiConflict, ApiNotFound

log = logging.getLogger(__name__)

PLURAL = "nodetelemetries"


class KubeUnavailable(RuntimeError):
    pass


def load_client(kubeconfig: str | None = None) -> ReloadingApiClient:
    """An ApiClient from in-cluster config, else the kubeconfig (KUBECONFIG or ~/.kube/config), rebuilt whenever
    the files it came from change."""
    from kubernetes import config as kube_config
    from kubernetes.config import incluster_config as incluster

    config: Any = kube_config  # the client's config loaders are untyped
    incluster_config: Any = incluster

    def in_cluster() -> bool:
        env = os.environ
        token = Path(incluster_config.SERVICE_TOKEN_FILENAME)
        return bool(env.get("KUBERNETES_SERVICE_HOST") and env.get("KUBERNETES_SERVICE_PORT") and token.is_file())

    if kubeconfig:
        files = [Path(kubeconfig)]
    elif in_cluster():
        files = [Path(incluster_config.SERVICE_TOKEN_FILENAME)]
    else:
        env = os.environ.get("KUBECONFIG", "")
        files = [Path(f).expanduser() for f in env.split(os.pathsep) if f] or [Path("~/.kube/config").expanduser()]

    def build() -> Any:
        from kubernetes import client

        if kubeconfig:
            # A client of its own, not the library's global default: several clients can live in one process.
            return config.new_client_from_config(config_file=kubeconfig)
        if in_cluster():
            configuration = client.Configuration()
            incluster_config.InClusterConfigLoader(
                incluster_config.SERVICE_TOKEN_FILENAME, incluster_config.SERVICE_CERT_FILENAME
            ).load_and_set(configuration)
            return client.ApiClient(configuration)
        return config.new_client_from_config()

    try:
        return ReloadingApiClient(build, files)
    except Exception as exc:
        raise KubeUnavailable(
            f"cannot find the Kubernetes API server ({exc}); run in a pod with a service account, set KUBECONFIG, "
            "pass --kubeconfig, or pass --no-kube to run only the Prometheus exporter"
        ) from exc


class ReloadingApiClient:
    """The ApiClient built from credential files, rebuilt when their contents change.

    Service-account tokens are rotated (projected tokens expire within the hour) and kubeconfigs get new
    certificates or tokens; a client built once would fail with 401 from then on and the agent would stop
    reporting. The files are tiny, so every call compares their bytes with the last build's; a file caught
    half-written fails to build and the previous client is kept until the next call.
    """

    def __init__(self, build: Callable[[], Any], files: list[Path]) -> None:
        self._build = build
        self.files = files
        self._lock = threading.Lock()
        self._seen = self._read()
        self._client = build()
        self.reloads = 0

    def _read(self) -> tuple[bytes | None, ...]:
        out: list[bytes | None] = []
        for f in self.files:
            try:
                out.append(f.read_bytes())
            except OSError:
                out.append(None)
        return tuple(out)

    def current(self) -> Any:
        seen = self._read()
        with self._lock:
            if seen != self._seen:
                try:
                    self._client = self._build()
                except Exception as exc:
                    log.warning("credentials changed but cannot be loaded yet (%s); keeping the previous ones", exc)
                    return self._client
                self._seen = seen
                self.reloads += 1
                log.info("credentials changed (%s): Kubernetes client reloaded", ", ".join(map(str, self.files)))
            return self._client


def pod_info(obj: dict[str, Any]) -> PodInfo | None:
    """The fields the agent needs from a pod object; None when the object is malformed."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    uid, name, namespace = meta.get("uid"), meta.get("name"), meta.get("namespace")
    if not (isinstance(uid, str) and isinstance(name, str) and isinstance(namespace, str)):
        return None
    gpus = 0
    for c in spec.get("containers") or []:
        res = (c or {}).get("resources") or {}
        value = (res.get("limits") or {}).get(GPU_RESOURCE, (res.get("requests") or {}).get(GPU_RESOURCE, 0))
        try:
            gpus += int(str(value))
        except ValueError:
            log.warning("pod %s/%s: %s=%r is not a whole number; ignored", namespace, name, GPU_RESOURCE, value)
    labels = meta.get("labels") or {}
    job = labels.get(JOB_NAME_LABEL)
    if job is None:
        for ref in meta.get("ownerReferences") or []:
            if (ref or {}).get("kind") == "TrainingJob":
                job = ref.get("name")
    annotations = {k: str(v) for k, v in (meta.get("annotations") or {}).items()}
    phase = str((obj.get("status") or {}).get("phase") or "Pending")
    return PodInfo(uid, namespace, name, job, gpus, phase, annotations)


class KubeClient:
    """The agent's API calls; each goes through the current client, so rotated credentials are picked up."""

    def __init__(self, api_client: Any) -> None:
        self.source = api_client if isinstance(api_client, ReloadingApiClient) else None
        self.api_client = api_client

    def _client(self) -> Any:
        return self.source.current() if self.source is not None else self.api_client

    @property
    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self._client())

    @property
    def custom(self) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(self._client())

    # ---- NodeTelemetry (reporter.TelemetryApi) ----

    def create_node_telemetry(self, name: str) -> None:
        from kubernetes.client.exceptions import ApiException

        metadata: dict[str, Any] = {"name": name}
        owner = self.node_owner_reference(name)
        if owner is not None:
            metadata["ownerReferences"] = [owner]
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "NodeTelemetry", "metadata": metadata, "spec": {}}
        try:
            self.custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, body, _request_timeout=15)
        except ApiException as exc:
            if exc.status == 409:
                raise ApiConflict(name) from exc
            raise

    def node_owner_reference(self, name: str) -> dict[str, Any] | None:
        """An owner reference to the Node `name`, so the API server's garbage collector deletes this node's
        NodeTelemetry with the Node; None when there is no such Node (nothing could ever collect it then).

        No blockOwnerDeletion: it would need update on nodes/finalizers, and nothing needs to block a Node's
        deletion on its telemetry."""
        from kubernetes.client.exceptions import ApiException

        try:
            node = self.core.read_node(name, _request_timeout=15)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return {"apiVersion": "v1", "kind": "Node", "name": name, "uid": node.metadata.uid}

    def ensure_owned_by_node(self, name: str) -> None:
        """Give an existing NodeTelemetry (made by an older agent, or by hand) its Node owner reference."""
        owner = self.node_owner_reference(name)
        if owner is None:
            return
        obj = self.custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, name, _request_timeout=15)
        meta = obj.get("metadata") or {}
        refs = list(meta.get("ownerReferences") or [])
        if any(r.get("uid") == owner["uid"] for r in refs):
            return
        # A merge patch replaces the whole list: keep the other owners, and let resourceVersion turn a race into a
        # 409 (retried at the next write) rather than a lost reference.
        patch = {"metadata": {"ownerReferences": [*refs, owner], "resourceVersion": meta.get("resourceVersion")}}
        self.custom.patch_cluster_custom_object(GROUP, VERSION, PLURAL, name, patch, _request_timeout=15)
        log.info("NodeTelemetry/%s is now owned by Node/%s (deleted with it)", name, name)

    def patch_node_telemetry_status(self, name: str, status: dict[str, Any]) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.custom.patch_cluster_custom_object_status(
                GROUP, VERSION, PLURAL, name, {"status": status}, _request_timeout=15
            )
        except ApiException as exc:
            if exc.status == 404:
                raise ApiNotFound(name) from exc
            raise

    # ---- watches ----

    def list_pods_fn(self) -> Callable[..., Any]:
        def list_fn(**kw: Any) -> Any:
            return self.core.list_pod_for_all_namespaces(**kw)

        return list_fn

    def list_telemetry_fn(self) -> Callable[..., Any]:
        def list_fn(**kw: Any) -> Any:
            return self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, **kw)

        return list_fn


class ListWatch(threading.Thread):
    """List, then watch from the list's resourceVersion; keeps `items` (by UID/name) current; re-lists on error."""

    def __init__(
        self,
        name: str,
        list_fn: Callable[..., Any],
        field_selector: str,
        key: Callable[[dict[str, Any]], str | None],
        on_change: Callable[[dict[str, dict[str, Any]]], None],
        stop: threading.Event,
        watch_timeout_s: int = 60,
        backoff_s: float = 5.0,
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.list_fn = list_fn
        self.field_selector = field_selector
        self.key = key
        self.on_change = on_change
        self.stop_event = stop
        self.watch_timeout_s = watch_timeout_s
        self.backoff_s = backoff_s
        self.items: dict[str, dict[str, Any]] = {}

    def run(self) -> None:
        from kubernetes import watch as kube_watch

        watch: Any = kube_watch
        while not self.stop_event.is_set():
            try:
                resp = self.list_fn(field_selector=self.field_selector, _preload_content=False, _request_timeout=30)
                body = json.loads(resp.data)
                items = {}
                for obj in body.get("items") or []:
                    k = self.key(obj)
                    if k:
                        items[k] = obj
                self.items = items
                self._changed()
                rv = (body.get("metadata") or {}).get("resourceVersion")
                w = watch.Watch()
                for event in w.stream(
                    self.list_fn,
                    field_selector=self.field_selector,
                    resource_version=rv,
                    timeout_seconds=self.watch_timeout_s,
                    _request_timeout=self.watch_timeout_s + 30,
                ):
                    if self.stop_event.is_set():
                        w.stop()
                        return
                    kind = event.get("type")
                    obj = event.get("raw_object") or {}
                    if kind == "ERROR":
                        break  # e.g. 410 Gone: re-list
                    k = self.key(obj)
                    if not k:
                        continue
                    if kind == "DELETED":
                        self.items.pop(k, None)
                    else:
                        self.items[k] = obj
                    self._changed()
            except Exception as exc:
                log.warning("%s: %s; retrying in %.0f s", self.name, exc, self.backoff_s)
                self.stop_event.wait(self.backoff_s)

    def _changed(self) -> None:
        try:
            self.on_change(dict(self.items))
        except Exception:
            log.exception("%s: handling a change failed", self.name)


def pod_key(obj: dict[str, Any]) -> str | None:
    uid = (obj.get("metadata") or {}).get("uid")
    return uid if isinstance(uid, str) else None


def name_key(obj: dict[str, Any]) -> str | None:
    name = (obj.get("metadata") or {}).get("name")
    return name if isinstance(name, str) else None


def power_requests(obj: dict[str, Any] | None) -> tuple[dict[str, float], list[str]]:
    """spec.powerLimits of a NodeTelemetry as {uuid: watts}; entries that are not valid are skipped with a reason."""
    requests: dict[str, float] = {}
    problems: list[str] = []
    if not obj:
        return requests, problems
    entries = (obj.get("spec") or {}).get("powerLimits") or []
    if not isinstance(entries, list):
        return requests, [f"spec.powerLimits: expected a list, got {type(entries).__name__}"]
    for i, entry in enumerate(entries):
        uuid = entry.get("uuid") if isinstance(entry, dict) else None
        watts = entry.get("watts") if isinstance(entry, dict) else None
        if not isinstance(uuid, str) or not uuid:
            problems.append(f"spec.powerLimits[{i}].uuid: {uuid!r} is not a GPU UUID")
            continue
        if isinstance(watts, bool) or not isinstance(watts, int | float) or watts <= 0:
            problems.append(f"spec.powerLimits[{i}].watts: {watts!r} is not a positive number of watts")
            continue
        requests[uuid] = float(watts)
    return requests, problems


def power_requests_expiry(obj: dict[str, Any] | None) -> tuple[float | None, str | None]:
    """spec.powerLimitsExpireAt as epoch seconds (None: no expiry), and a problem when it cannot be read.

    An unreadable expiry counts as already expired: a request whose lifetime is unknown is not trusted.
    """
    value = ((obj or {}).get("spec") or {}).get("powerLimitsExpireAt")
    if value is None:
        return None, None
    try:
        stamp = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return 0.0, f"spec.powerLimitsExpireAt: {value!r} is not an RFC 3339 time (treated as expired)"
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp(), None
