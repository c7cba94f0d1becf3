"""Kubernetes API access for the agent (blocking client, used only from the agent's worker threads).

The calls go through powertrain_agent.kubehttp (standard library HTTP), not the `kubernetes` package: see there.

The agent watches two things, each with a field selector so the API server sends only what concerns this
node: the pods bound to it (spec.nodeName) and its own NodeTelemetry (metadata.name). Each watch is
list-then-watch with resourceVersion, re-listing after errors or a 410 Gone, with back-off.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from powertrain.api.constants import GPU_RESOURCE, GROUP, JOB_NAME_LABEL, VERSION
from powertrain_agent.kubehttp import ApiError, HttpApi, path
from powertrain_agent.readings import PodInfo
from powertrain_agent.reporter import ApiConflict, ApiNotFound

log = logging.getLogger(__name__)

PLURAL = "nodetelemetries"
MERGE_PATCH = "application/merge-patch+json"


class KubeUnavailable(RuntimeError):
    pass


def load_client(kubeconfig: str | None = None) -> ReloadingApiClient:
    """A client from in-cluster config, else the kubeconfig (KUBECONFIG or ~/.kube/config), rebuilt whenever
    the files it came from change."""
    from powertrain_agent import kubehttp

    if kubeconfig:
        files = kubehttp.kubeconfig_files(kubeconfig)
    elif kubehttp.in_cluster_available():
        files = [kubehttp.token_file()]
    else:
        files = kubehttp.kubeconfig_files(None)

    def build() -> kubehttp.HttpApi:
        if not kubeconfig and kubehttp.in_cluster_available():
            return kubehttp.HttpApi(kubehttp.load_in_cluster())
        return kubehttp.HttpApi(kubehttp.load_kubeconfig(files))

    try:
        return ReloadingApiClient(build, files)
    except Exception as exc:
        raise KubeUnavailable(
            f"cannot find the Kubernetes API server ({exc}); run in a pod with a service account, set KUBECONFIG, "
            "pass --kubeconfig, or pass --no-kube to run only the Prometheus exporter"
        ) from exc


class ReloadingApiClient:
    """The client built from credential files, rebuilt when their contents change (or an exec plugin's
    credential expires).

    Service-account tokens are rotated (projected tokens expire within the hour) and kubeconfigs get new
    certificates or tokens; a client built once would fail with 401 from then on and the agent would stop
    reporting. The files are tiny, so every call compares their bytes with the last build's; a file caught
    half-written fails to build and the previous client is kept until the next call.
    """

    def __init__(self, build: Callable[[], HttpApi], files: list[Path]) -> None:
        self._build = build
        self.files = files
        self._lock = threading.Lock()
        self._client = build()
        self._seen = self._read()
        self.reloads = 0

    def _read(self) -> tuple[bytes | None, ...]:
        """The bytes of the credential files and of the files they name (a rotated client certificate, a
        tokenFile)."""
        out: list[bytes | None] = []
        for f in [*self.files, *self._client.conn.files]:
            try:
                out.append(f.read_bytes())
            except OSError:
                out.append(None)
        return tuple(out)

    def current(self) -> HttpApi:
        seen = self._read()
        with self._lock:
            if seen != self._seen or self._client.conn.expired():
                named = self._client.conn.files
                try:
                    self._client = self._build()
                except Exception as exc:
                    log.warning("credentials changed but cannot be loaded yet (%s); keeping the previous ones", exc)
                    return self._client
                # The bytes read before the build, so a change during it triggers the next one.
                self._seen = seen if self._client.conn.files == named else self._read()
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

    def __init__(self, api_client: ReloadingApiClient | HttpApi) -> None:
        self.source = api_client if isinstance(api_client, ReloadingApiClient) else None
        self.api_client = api_client

    @property
    def http(self) -> HttpApi:
        if self.source is not None:
            return self.source.current()
        assert not isinstance(self.api_client, ReloadingApiClient)
        return self.api_client

    # ---- NodeTelemetry (reporter.TelemetryApi) ----

    def create_node_telemetry(self, name: str) -> None:
        metadata: dict[str, Any] = {"name": name}
        owner = self.node_owner_reference(name)
        if owner is not None:
            metadata["ownerReferences"] = [owner]
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "NodeTelemetry", "metadata": metadata, "spec": {}}
        try:
            self.http.request("POST", path(GROUP, VERSION, PLURAL), body)
        except ApiError as exc:
            if exc.status == 409:
                raise ApiConflict(name) from exc
            raise

    def get_node_telemetry(self, name: str) -> dict[str, Any] | None:
        try:
            return self.http.request("GET", path(GROUP, VERSION, PLURAL, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def node_owner_reference(self, name: str) -> dict[str, Any] | None:
        """An owner reference to the Node `name`, so the API server's garbage collector deletes this node's
        NodeTelemetry with the Node; None when there is no such Node (nothing could ever collect it then).

        No blockOwnerDeletion: it would need update on nodes/finalizers, and nothing needs to block a Node's
        deletion on its telemetry."""
        try:
            node = self.http.request("GET", path("", "v1", "nodes", name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        uid = (node.get("metadata") or {}).get("uid")
        if not isinstance(uid, str):
            return None
        return {"apiVersion": "v1", "kind": "Node", "name": name, "uid": uid}

    def ensure_owned_by_node(self, name: str) -> None:
        """Give an existing NodeTelemetry (made by an older agent, or by hand) its Node owner reference."""
        owner = self.node_owner_reference(name)
        if owner is None:
            return
        obj = self.http.request("GET", path(GROUP, VERSION, PLURAL, name))
        meta = obj.get("metadata") or {}
        refs = list(meta.get("ownerReferences") or [])
        if any(r.get("uid") == owner["uid"] for r in refs):
            return
        # A merge patch replaces the whole list: keep the other owners, and let resourceVersion turn a race into a
        # 409 (retried at the next write) rather than a lost reference.
        patch = {"metadata": {"ownerReferences": [*refs, owner], "resourceVersion": meta.get("resourceVersion")}}
        self.http.request("PATCH", path(GROUP, VERSION, PLURAL, name), patch, content_type=MERGE_PATCH)
        log.info("NodeTelemetry/%s is now owned by Node/%s (deleted with it)", name, name)

    def patch_node_telemetry_status(self, name: str, status: dict[str, Any]) -> None:
        try:
            self.http.request(
                "PATCH", path(GROUP, VERSION, PLURAL, name, "status"), {"status": status}, content_type=MERGE_PATCH
            )
        except ApiError as exc:
            if exc.status == 404:
                raise ApiNotFound(name) from exc
            raise

    # ---- watches ----

    def pods_collection(self) -> Collection:
        return Collection(self, path("", "v1", "pods"))

    def telemetry_collection(self) -> Collection:
        return Collection(self, path(GROUP, VERSION, PLURAL))


@dataclass(frozen=True)
class Collection:
    """A cluster-wide collection the agent lists and watches, through the client's current credentials."""

    kube: KubeClient
    path: str

    def list(self, field_selector: str, timeout: float) -> dict[str, Any]:
        return self.kube.http.request("GET", self.path, params={"fieldSelector": field_selector}, timeout=timeout)

    def watch(self, field_selector: str, resource_version: str | None, timeout_s: int) -> Iterator[dict[str, Any]]:
        params = {"fieldSelector": field_selector, "timeoutSeconds": str(timeout_s), "allowWatchBookmarks": "false"}
        if resource_version:
            params["resourceVersion"] = resource_version
        # The server ends the watch after timeout_s; a read that waits 30 s longer means the connection is gone.
        return self.kube.http.watch(self.path, params, timeout=timeout_s + 30)


class ListWatch(threading.Thread):
    """List, then watch from the list's resourceVersion; keeps `items` (by UID/name) current; re-lists on error."""

    def __init__(
        self,
        name: str,
        collection: Collection,
        field_selector: str,
        key: Callable[[dict[str, Any]], str | None],
        on_change: Callable[[dict[str, dict[str, Any]]], None],
        stop: threading.Event,
        watch_timeout_s: int = 60,
        backoff_s: float = 5.0,
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.collection = collection
        self.field_selector = field_selector
        self.key = key
        self.on_change = on_change
        self.stop_event = stop
        self.watch_timeout_s = watch_timeout_s
        self.backoff_s = backoff_s
        self.items: dict[str, dict[str, Any]] = {}

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                body = self.collection.list(self.field_selector, timeout=30)
                items = {}
                for obj in body.get("items") or []:
                    k = self.key(obj)
                    if k:
                        items[k] = obj
                self.items = items
                self._changed()
                rv = (body.get("metadata") or {}).get("resourceVersion")
                for event in self.collection.watch(self.field_selector, rv, self.watch_timeout_s):
                    if self.stop_event.is_set():
                        return
                    kind = event.get("type")
                    obj = event.get("object") or {}
                    if kind == "ERROR":
                        break  # e.g. 410 Gone: re-list
                    if kind == "BOOKMARK":
                        continue
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
