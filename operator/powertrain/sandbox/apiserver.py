"""The sandbox's Kubernetes-API-compatible server: real kubectl, kopf and `kubernetes` clients work against it.

    server = ApiServer(token="secret")
    await server.start()            # 127.0.0.1, a free port
    server.url                      # https://127.0.0.1:PORT  (kubeconfig: server, token, server.ca_pem)
    server.faults.configure(...)    # fault injection (see powertrain.sandbox.faults)
    await server.stop()

HTTPS on loopback with a self-signed certificate (`server.ca_pem`) and bearer tokens: the admin token (all-powerful,
group system:masters) and ServiceAccount tokens the server issues (powertrain.sandbox.authn). Requests without
a valid token get 401 (except /healthz, /readyz, /livez). Every other request is authorized by RBAC
(powertrain.sandbox.rbac; 403 in the API server's wording), impersonation headers included, and writes pass
ValidatingAdmissionPolicies (powertrain.sandbox.admission).
Object semantics are documented in powertrain.sandbox.registry, the store and watch rules in
powertrain.sandbox.store: each resource type keeps its last `watch_history` changes, and a watch from an
older resourceVersion gets 410 Expired; a watcher more than `watch_queue_size` events behind is closed.
Pods' `log` subresource returns a real pod's output (powertrain.sandbox.process_runner) or, for a simulated pod,
its `sandbox.powertrain.dev/log` annotation.

Served beyond the core kinds, leases, events and CRDs: apps/v1 Deployments, ReplicaSets, StatefulSets,
DaemonSets, ControllerRevisions (stored); batch/v1 Jobs; core/v1 ReplicationControllers and
serviceaccounts/token; policy/v1 PodDisruptionBudgets and networking.k8s.io/v1 NetworkPolicies (stored, not
enforced); rbac.authorization.k8s.io/v1; admissionregistration.k8s.io/v1 ValidatingAdmissionPolicies and
bindings; authorization.k8s.io/v1 (Self|Local)SubjectAccessReviews and authentication.k8s.io/v1
SelfSubjectReviews. The workload controllers run in the sandbox cluster (powertrain.sandbox.workloads), not in
this server. A group it does not serve answers as a real server does for an absent one: 404 on discovery and
on its paths ("the server could not find the requested resource").

API behaviours deliberately left out (a real cluster has them; the sandbox does not need them):
- protobuf (responses are always JSON; request bodies only for the kinds kubectl and helm send that way:
  namespaces, configmaps, secrets, service accounts, access and identity reviews, token requests, delete
  options) and CBOR; aggregated discovery (kubectl falls back to legacy discovery); OpenAPI v2 as protobuf is an
  empty document (enough for kubectl's and helm's validation to fall through to the server), and there are no
  OpenAPI schemas for built-in kinds (so `kubectl explain` works for custom resources only; kubectl apply uses
  its compiled-in types for built-in kinds).
- authentication other than the admin token and ServiceAccount tokens (client certificates, OIDC, webhook
  token review, anonymous requests); the ServiceAccount issuer's OIDC discovery and keys; authorization modes
  other than RBAC (no Node authorizer: the simulated kubelet uses the admin token); selfsubjectrulesreviews;
  mutating and validating admission webhooks, MutatingAdmissionPolicies, the ServiceAccount admission plugin's
  token volume (pods are not given a kube-api-access volume; the process runner mounts the token itself), Pod
  Security admission, ResourceQuota and LimitRange; API priority and fairness; audit.
- server-side apply ownership: managedFields are not written; the server remembers each manager's last applied
  configuration and removes what that manager stops applying, but fields are not owned, so there are no apply
  conflicts and `force` is accepted and ignored.
- list chunking returns pages of the current state (not a consistent snapshot of the first page's
  resourceVersion) and continue tokens never expire; `resourceVersionMatch` is accepted and ignored.
- not served: EndpointSlices, ResourceQuotas, LimitRanges, PriorityClasses, storage (PersistentVolumes,
  claims, StorageClasses), Ingresses, CSRs, HorizontalPodAutoscalers, CronJobs, metrics; pods/exec, attach and
  port-forward.
- built-in kinds are decoded into their types (powertrain.sandbox.typed: 400 for wrong JSON types, unknown
  fields dropped, or refused under `fieldValidation=Strict`), get a few defaults (pods, services, namespaces,
  secrets, workloads), and only pods and workloads are validated beyond ObjectMeta
  (powertrain.sandbox.podspec covers containers, ports, env, resources, restart policy and grace periods, not
  volumes, probes or security contexts; powertrain.sandbox.workload_specs covers selectors, restart policies
  and immutable selectors); RBAC objects are stored as sent (no escalation check: creating a Role that grants
  more than the creator has is allowed); PodDisruptionBudgets are not consulted (eviction always succeeds).
- request limits (powertrain.sandbox.limits): bodies over 3 MiB answer 413; bodies nested deeper than 256 levels
  answer 400 (a real server allows 10,000: the sandbox's walks are recursive Python). The 1.5 MiB etcd object
  limit is not enforced.
- CRDs: one storage version and no conversion webhooks (other served versions only relabel apiVersion);
  `x-kubernetes-validations` rules run with the `cel` library (Kubernetes CEL extension functions it lacks,
  e.g. `isURL`, quantity helpers, fail as evaluation errors); no validation ratcheting; CRDs are Established
  at once.
- garbage collection, namespace and CRD cleanup run synchronously within the deleting request rather than
  in background controllers.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from powertrain.sandbox import discovery, limits, openapi, protobuf, rbac
from powertrain.sandbox import tls as tls_mod
from powertrain.sandbox.admission import Admission
from powertrain.sandbox.authn import (
    AUTHENTICATED,
    Authenticator,
    UserInfo,
    current_subresource,
    current_user,
    split_service_account,
)
from powertrain.sandbox.errors import ApiError, bad_request, method_not_allowed, not_found, status_object
from powertrain.sandbox.faults import Faults
from powertrain.sandbox.registry import Registry, WriteResult
from powertrain.sandbox.resources import REVIEW_KEYS, ResourceType
from powertrain.sandbox.selectors import parse_field_selector, parse_label_selector
from powertrain.sandbox.store import CLOSE, Event, Obj, Store, Watcher
from powertrain.sandbox.tables import to_table

log = logging.getLogger(__name__)

_JSON = "application/json"
# Sandbox-only: pods/NAME/log returns this annotation's text (a simulated kubelet may write it).
LOG_ANNOTATION = "sandbox.powertrain.dev/log"
_BODY_TYPES = {
    "application/json",
    "application/yaml",
    "application/merge-patch+json",
    "application/json-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
    "",
}


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=_dumps(obj), status=status, content_type=_JSON, headers=headers)


def _error_response(err: ApiError) -> web.Response:
    return _json_response(err.status(), status=err.code, headers=err.headers or None)


def _no_such_path() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def _created() -> web.Response:
    """What POST pods/NAME/binding and /eviction answer on success: a Status, not the object."""
    return _json_response(
        {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}, status=201
    )


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("true", "1", "")


class _Request:
    """A resource request after routing: which type, namespace, name, subresource and verb."""

    __slots__ = ("group", "name", "namespace", "rt", "subresource", "verb", "version")

    def __init__(
        self,
        rt: ResourceType,
        group: str,
        version: str,
        namespace: str | None,
        name: str | None,
        subresource: str | None,
        verb: str,
    ) -> None:
        self.rt, self.group, self.version = rt, group, version
        self.namespace, self.name, self.subresource, self.verb = namespace, name, subresource, verb


class ApiServer:
    def __init__(
        self,
        *,
        token: str,
        watch_history: int = 10_000,
        watch_queue_size: int = 5_000,
        bookmark_interval: float = 10.0,
        tls: bool = True,
    ) -> None:
        """`tls=False` serves plain HTTP; kubectl then sends no token, so only in-process clients can use it."""
        self.token = token
        self.tls = tls
        self._cert_pem, self._key_pem = tls_mod.self_signed() if tls else (b"", b"")
        self.store = Store(watch_history=watch_history, watch_queue_size=watch_queue_size)
        self.registry = Registry(self.store)
        self.faults = Faults(dropper=self._drop_watches)
        self.bookmark_interval = bookmark_interval
        self._runner: web.AppRunner | None = None
        self._url = ""
        self._openapi_cache: dict[str, Any] | None = None
        self.registry.on_types_changed.append(self._invalidate_openapi)
        # Real pods' container logs (powertrain.sandbox.process_runner): (namespace, pod, container, previous)
        # → text, or None for a simulated pod.
        self.pod_logs: Callable[[str, str, str | None, bool], str | None] | None = None
        self.authn = Authenticator(token, self.store)
        self.authz = rbac.Authorizer(self.store)
        self.registry.on_change.append(self.authz.invalidate)
        self.registry.admission = Admission(self.store)
        for key, obj in rbac.bootstrap_objects():
            self.registry.create(self.registry.types[key], "v1", None, obj)

    # Lifecycle.
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        # aiohttp refuses bodies over client_max_size itself; limits.read_body turns that into the API's 413.
        app = web.Application(client_max_size=limits.MAX_REQUEST_BYTES)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        ctx = tls_mod.server_context(self._cert_pem, self._key_pem) if self.tls else None
        site = web.TCPSite(self._runner, host, port, backlog=1024, ssl_context=ctx)
        await site.start()
        server = site._server
        assert server is not None
        sock = server.sockets[0]  # type: ignore[attr-defined]
        bound_host, bound_port = sock.getsockname()[:2]
        self._url = f"{'https' if self.tls else 'http'}://{bound_host}:{bound_port}"

    @property
    def url(self) -> str:
        """e.g. https://127.0.0.1:40123 (set by start())."""
        return self._url

    @property
    def ca_pem(self) -> bytes:
        """The server's self-signed certificate (PEM): the kubeconfig's certificate-authority-data, base64-encoded."""
        return self._cert_pem

    async def stop(self) -> None:
        self._drop_watches()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _drop_watches(self) -> int:
        watchers = self.store.all_watchers()
        for w in watchers:
            w.close()
        return len(watchers)

    def _invalidate_openapi(self) -> None:
        self._openapi_cache = None

    # Dispatch.
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path in ("/healthz", "/readyz", "/livez") or path.startswith(("/healthz/", "/readyz/", "/livez/")):
            return web.Response(text="ok")
        user = self.authn.authenticate(request.headers.get("Authorization", ""))
        if user is None:
            return _json_response(status_object(401, "Unauthorized", "Unauthorized"), status=401)
        try:
            if "Impersonate-User" in request.headers or "Impersonate-Group" in request.headers:
                user = self._impersonate(request, user)
            current_user.set(user)
            current_subresource.set("")
            if not path.startswith(("/api/", "/apis/")):
                self._authorize_path(user, request.method, path)
            if path.startswith("/sandbox/v1/faults"):
                return await self._faults(request)
            if path == "/version" or path == "/version/":
                return _json_response(discovery.VERSION_INFO)
            if path.startswith("/openapi/"):
                return self._openapi(request)
            parts = [unquote(p) for p in path.strip("/").split("/") if p]
            if not parts or parts[0] not in ("api", "apis"):
                raise _no_such_path()
            return await self._api(request, parts)
        except ApiError as err:
            return _error_response(err)
        except RecursionError:
            # Bodies are depth-checked when decoded (limits.decode_body); an object that still recurses too
            # deeply in some walk is the client's to fix, and must not read as a server fault.
            log.warning("%s %s: an object nested too deeply for a recursive walk", request.method, path)
            return _error_response(bad_request(limits.too_deep_message()))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            log.debug("bad request %s %s", request.method, path, exc_info=True)
            return _error_response(bad_request(f"the request could not be handled: {exc}"))
        except ConnectionError as exc:
            # The client hung up (a watch closed, kubectl interrupted): nobody is left to answer, and aiohttp
            # would log a re-raised ConnectionError as a server error with a traceback.
            log.debug("client went away during %s %s: %s", request.method, path, exc)
            return web.Response(status=499)
        except Exception as exc:  # a bug here must not take the server down: answer 500 and keep serving
            log.exception("internal error on %s %s", request.method, path)
            return _error_response(
                ApiError(
                    500, "InternalError", f"an error on the server ({exc!r}) has prevented the request from succeeding"
                )
            )

    def _authorize_path(self, user: UserInfo, method: str, path: str) -> None:
        if user.is_admin:
            return
        verb = {"GET": "get", "HEAD": "get", "POST": "post", "PUT": "put", "PATCH": "patch", "DELETE": "delete"}
        attrs = rbac.Attributes(verb=verb.get(method, method.lower()), path=path)
        if not self.authz.allowed(user, attrs):
            raise rbac.forbidden(user, attrs)

    def _impersonate(self, request: web.Request, user: UserInfo) -> UserInfo:
        """Impersonation headers [Authenticating: "User impersonation"]: the requester needs `impersonate` on
        each user, group, service account and extra it asks for; the request then runs as that user."""
        h = request.headers
        name = h.get("Impersonate-User", "")
        if not name:
            raise bad_request("requested impersonation of groups without impersonating a user")
        groups = h.getall("Impersonate-Group", [])
        extra: dict[str, list[str]] = {}
        for key in h:
            if key.lower().startswith("impersonate-extra-"):
                extra[unquote(key[len("impersonate-extra-") :]).lower()] = h.getall(key)
        sa = split_service_account(name)
        checks = [
            rbac.Attributes("impersonate", "", "serviceaccounts", "", sa[0], sa[1])
            if sa
            else rbac.Attributes("impersonate", "", "users", "", "", name)
        ]
        checks += [rbac.Attributes("impersonate", "", "groups", "", "", g) for g in groups]
        for k, vs in extra.items():
            checks += [rbac.Attributes("impersonate", "authentication.k8s.io", "userextras", k, "", v) for v in vs]
        for a in checks:
            if not self.authz.allowed(user, a):
                raise rbac.forbidden(user, a)
        if sa and not groups:
            groups = ["system:serviceaccounts", f"system:serviceaccounts:{sa[0]}"]
        if name != "system:anonymous" and AUTHENTICATED not in groups:
            groups.append(AUTHENTICATED)
        return UserInfo(name, h.get("Impersonate-Uid", ""), tuple(groups), extra)

    async def _faults(self, request: web.Request) -> web.Response:
        if request.path.rstrip("/") == "/sandbox/v1/faults/drop-watches":
            if request.method != "POST":
                raise method_not_allowed()
            return _json_response({"dropped": self.faults.drop_watches()})
        if request.path.rstrip("/") == "/sandbox/v1/faults/watch-conflicts":
            if request.method != "POST":
                raise method_not_allowed()
            try:
                dropped = self.faults.conflicts_from_json(await request.json())
            except (ValueError, TypeError) as exc:
                raise bad_request(f"watch conflicts: {exc}") from exc
            return _json_response({"dropped": dropped, **self.faults.to_json()})
        if request.method == "GET":
            return _json_response(self.faults.to_json())
        if request.method == "DELETE":
            self.faults.clear()
            return _json_response(self.faults.to_json())
        if request.method in ("POST", "PUT"):
            try:
                self.faults.from_json(await request.json())
            except (ValueError, TypeError) as exc:
                raise bad_request(f"fault configuration: {exc}") from exc
            return _json_response(self.faults.to_json())
        raise method_not_allowed()

    def _openapi(self, request: web.Request) -> web.Response:
        path = request.path.rstrip("/")
        if path == "/openapi/v2":
            if "protobuf" in request.headers.get("Accept", "") and "json" not in request.headers.get("Accept", ""):
                return web.Response(body=openapi.v2_protobuf(), content_type=openapi.V2_PROTOBUF)
            return _json_response(openapi.v2_doc(list(self.registry.types.values())))
        docs = self._openapi_docs()
        if path == "/openapi/v3":
            return _json_response(openapi.v3_root({p: h for p, (h, _) in docs.items()}))
        key = path.removeprefix("/openapi/v3/")
        if key not in docs:
            raise _no_such_path()
        return web.Response(body=docs[key][1], content_type=_JSON)

    def _openapi_docs(self) -> dict[str, Any]:
        if self._openapi_cache is None:
            cache: dict[str, Any] = {}
            by_gv: dict[tuple[str, str], list[ResourceType]] = {}
            for rt in self.registry.types.values():
                for v in rt.versions:
                    by_gv.setdefault((rt.group, v), []).append(rt)
            for (group, version), types in by_gv.items():
                doc = openapi.group_version_doc(types, group, version)
                cache[openapi.gv_path(group, version)] = (openapi.doc_hash(doc), _dumps(doc))
            self._openapi_cache = cache
        return self._openapi_cache

    async def _api(self, request: web.Request, parts: list[str]) -> web.StreamResponse:
        user = current_user.get()
        if len(parts) <= (2 if parts[0] == "api" else 3):  # discovery documents are non-resource paths
            self._authorize_path(user, request.method, request.path)
        if parts[0] == "api":
            if len(parts) == 1:
                return _json_response(discovery.api_versions(request.host))
            group, version, rest = "", parts[1], parts[2:]
        else:
            if len(parts) == 1:
                return _json_response(discovery.api_group_list(self.registry.groups()))
            group = parts[1]
            groups = self.registry.groups()
            if group not in groups:
                raise _no_such_path()
            if len(parts) == 2:
                return _json_response(discovery.api_group(group, groups[group]))
            version, rest = parts[2], parts[3:]
        if not rest:
            types = [rt for rt in self.registry.types.values() if rt.group == group and version in rt.versions]
            if not types:
                raise _no_such_path()
            return _json_response(discovery.resource_list(group, version, types))
        req = self._route(request, group, version, rest)
        if not user.is_admin:
            attrs = rbac.Attributes(
                req.verb, req.rt.group, req.rt.plural, req.subresource or "", req.namespace or "", req.name or ""
            )
            if not self.authz.allowed(user, attrs):
                raise rbac.forbidden(user, attrs)
        current_subresource.set(req.subresource or "")
        if self.faults.latency > 0:
            await asyncio.sleep(self.faults.latency)
        self.faults.maybe_fail(req.verb, req.rt.plural, req.rt.group)
        return await self._serve(request, req)

    def _route(self, request: web.Request, group: str, version: str, rest: list[str]) -> _Request:
        watch_prefix = rest[0] == "watch"
        if watch_prefix:
            rest = rest[1:]
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces" and not (len(rest) == 3 and rest[2] in ("status", "finalize")):
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise _no_such_path()
        rt = self.registry.resolve(group, version, rest[0])
        if namespace is not None and not rt.namespaced:
            raise not_found(rt.plural, "/".join(rest), rt.group)
        name = rest[1] if len(rest) >= 2 else None
        sub = rest[2] if len(rest) == 3 else None
        if sub is not None and not (
            (sub == "status" and rt.status)
            or (sub == "scale" and rt.scale is not None)
            or sub in rt.subresources
            or (sub == "finalize" and rt.key == "namespaces")
        ):
            raise not_found(f"{rt.plural}/{sub}", name or "", rt.group)
        method = request.method
        q = request.query
        if method == "GET":
            if name is None:
                verb = "watch" if watch_prefix or (_truthy(q.get("watch")) and "watch" in q) else "list"
            else:
                verb = "watch" if watch_prefix else "get"
        elif method == "POST":
            verb = "create"
        elif method == "PUT":
            verb = "update"
        elif method == "PATCH":
            verb = "patch"
        elif method == "DELETE":
            verb = "delete" if name is not None else "deletecollection"
        else:
            raise method_not_allowed()
        if method == "POST" and name is not None and sub not in ("binding", "eviction", "token"):
            raise method_not_allowed()
        if method in ("PUT", "PATCH") and name is None:
            raise method_not_allowed()
        return _Request(rt, group, version, namespace, name, sub, verb)

    async def _body(self, request: web.Request) -> tuple[Any, str]:
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip()
        if ctype == protobuf.CONTENT_TYPE:
            return protobuf.decode(await limits.read_body(request)), ctype
        if ctype not in _BODY_TYPES:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - "
                f"accepted media types include: {', '.join(sorted(t for t in _BODY_TYPES if t))}",
            )
        raw = await limits.read_body(request)
        if not raw:
            return None, ctype
        return limits.decode_body(raw, ctype), ctype

    async def _serve(self, request: web.Request, req: _Request) -> web.StreamResponse:
        rt, q, reg = req.rt, request.query, self.registry
        dry_run = bool(q.get("dryRun"))
        fv = q.get("fieldValidation") or "Warn"
        if fv not in ("Ignore", "Warn", "Strict"):
            raise bad_request(
                f'fieldValidation: Unsupported value: {fv!r}: supported values: "Ignore", "Strict", "Warn"'
            )
        ns = req.namespace
        if req.verb in ("list", "watch"):
            labels = parse_label_selector(q.get("labelSelector"))
            fields = parse_field_selector(q.get("fieldSelector"), rt.field_selectors, rt.plural)
            if req.name is not None:  # legacy /watch/.../NAME
                fields = parse_field_selector(f"metadata.name={req.name}", rt.field_selectors, rt.plural)
            if req.verb == "watch":
                return await self._watch(request, req, labels, fields)
            return self._list(request, req, reg.select(rt, ns, labels, fields))
        if req.verb == "get":
            assert req.name is not None
            if req.subresource == "log":
                text = self._pod_log(ns, req.name, q.get("container"), _truthy(q.get("previous")))
                if q.get("tailLines"):
                    lines = text.splitlines(keepends=True)
                    text = "".join(lines[-int(q["tailLines"]) :]) if int(q["tailLines"]) > 0 else ""
                return web.Response(text=text, content_type="text/plain")
            if req.subresource == "scale":
                return _json_response(reg.get_scale(rt, ns, req.name))
            obj = reg.output(rt, req.version, reg.get(rt, ns, req.name))
            if _wants_table(request):
                return _json_response(self._table(request, req, [obj]))
            return _json_response(obj)
        if req.verb == "create":
            body, _ = await self._body(request)
            if req.subresource == "binding":
                assert req.name is not None
                assert ns is not None
                reg.bind(ns, req.name, body)
                return _created()
            if req.subresource == "eviction":
                assert req.name is not None
                assert ns is not None
                reg.evict(ns, req.name, body)
                return _created()
            if req.subresource == "token":
                assert req.name is not None
                assert ns is not None
                return _json_response(self.authn.issue(ns, req.name, body), status=201)
            if rt.key in REVIEW_KEYS:
                return _json_response(self._review(req, body), status=201)
            if rt.key == "bindings":
                assert ns is not None
                reg.bind(ns, str(((body or {}).get("metadata") or {}).get("name", "")), body)
                return _created()
            result = reg.create(rt, req.version, ns, body, dry_run=dry_run, field_validation=fv)
            return self._written(req, result, 201)
        if req.verb == "update":
            assert req.name is not None
            body, _ = await self._body(request)
            if req.subresource == "scale":
                return _json_response(reg.set_scale(rt, req.version, ns, req.name, body))
            result = reg.update(
                rt, req.version, ns, req.name, body, subresource=req.subresource, dry_run=dry_run, field_validation=fv
            )
            return self._written(req, result, 200)
        if req.verb == "patch":
            assert req.name is not None
            body, ctype = await self._body(request)
            if req.subresource == "scale":
                return self._patch_scale(req, ctype, body)
            result = reg.patch(
                rt,
                req.version,
                ns,
                req.name,
                ctype,
                body,
                subresource=req.subresource,
                dry_run=dry_run,
                field_validation=fv,
                field_manager=q.get("fieldManager"),
                force=_truthy(q.get("force")),
            )
            return self._written(req, result, 201 if result.created else 200)
        if req.verb == "delete":
            assert req.name is not None
            body, _ = await self._body(request)
            opts = dict(body) if isinstance(body, dict) else {}
            if "gracePeriodSeconds" in q:
                opts["gracePeriodSeconds"] = int(q["gracePeriodSeconds"])
            if "propagationPolicy" in q:
                opts["propagationPolicy"] = q["propagationPolicy"]
            if "orphanDependents" in q:
                opts["orphanDependents"] = _truthy(q["orphanDependents"])
            obj, removed = reg.delete(rt, ns, req.name, opts, dry_run=dry_run)
            if removed and rt.crd:
                meta = obj["metadata"]
                return _json_response(
                    status_object(200, "", "")
                    | {
                        "status": "Success",
                        "details": {"name": meta["name"], "group": rt.group, "kind": rt.plural, "uid": meta["uid"]},
                    }
                )
            return _json_response(reg.output(rt, req.version, obj), status=200)
        if req.verb == "deletecollection":
            labels = parse_label_selector(q.get("labelSelector"))
            fields = parse_field_selector(q.get("fieldSelector"), rt.field_selectors, rt.plural)
            body, _ = await self._body(request)
            opts = dict(body) if isinstance(body, dict) else {}
            items = reg.select(rt, ns, labels, fields)
            for obj in list(items):
                meta = obj["metadata"]
                try:
                    reg.delete(rt, meta.get("namespace"), meta["name"], opts, dry_run=dry_run)
                except ApiError as err:
                    if err.code != 404:
                        raise
            return _json_response(
                {
                    "kind": rt.list_kind,
                    "apiVersion": rt.api_version(req.version),
                    "metadata": {"resourceVersion": str(self.store.rv)},
                    "items": [reg.output(rt, req.version, o) for o in items],
                }
            )
        raise method_not_allowed()

    def _review(self, req: _Request, body: Any) -> dict[str, Any]:
        """Access and identity reviews: answered from the caller's (or the named subject's) RBAC, never stored."""
        if not isinstance(body, dict):
            raise bad_request(f"the body must be a {req.rt.kind}")
        spec = body.get("spec") or {}
        caller = current_user.get()
        out = {"kind": req.rt.kind, "apiVersion": req.rt.api_version(req.version), "metadata": {}}
        if req.rt.kind == "SelfSubjectReview":
            return out | {"status": {"userInfo": caller.to_json()}}
        if req.rt.kind == "SelfSubjectAccessReview":
            subject = caller
        else:
            extra = {k: list(v) for k, v in (spec.get("extra") or {}).items()}
            subject = UserInfo(
                str(spec.get("user") or ""), str(spec.get("uid") or ""), tuple(spec.get("groups") or ()), extra
            )
        if req.rt.kind == "LocalSubjectAccessReview":
            ra = spec.get("resourceAttributes") or {}
            if ra.get("namespace") and ra["namespace"] != req.namespace:
                raise bad_request("spec.resourceAttributes.namespace must match the namespace of the request")
        status = rbac.review_status(self.authz, subject, spec, req.namespace or "")
        return out | {"spec": spec, "status": status}

    def _pod_log(self, namespace: str | None, name: str, container: str | None, previous: bool = False) -> str:
        """A real pod's container output; a simulated pod's is what the kubelet wrote into LOG_ANNOTATION."""
        pod = self.registry.get(self.registry.types["pods"], namespace, name)
        names = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        if container is not None and container not in names:
            raise bad_request(f"container {container} is not valid for pod {name}")
        if container is None and len(names) > 1:
            raise bad_request(f"a container name must be specified for pod {name}, choose one of: {names}")
        if self.pod_logs is not None:
            text = self.pod_logs(namespace or "", name, container, previous)
            if text is not None:
                return text
        return str(((pod["metadata"].get("annotations") or {}).get(LOG_ANNOTATION)) or "")

    def _patch_scale(self, req: _Request, ctype: str, body: Any) -> web.Response:
        from powertrain.sandbox.patch import json_patch, merge_patch

        assert req.name is not None
        current = self.registry.get_scale(req.rt, req.namespace, req.name)
        if ctype == "application/json-patch+json":
            new = json_patch(current, body)
        elif isinstance(body, dict):
            new = merge_patch(current, body)
        else:
            raise bad_request("a scale patch must be a JSON object or a JSON patch")
        return _json_response(self.registry.set_scale(req.rt, req.version, req.namespace, req.name, new))

    def _written(self, req: _Request, result: WriteResult, status: int) -> web.Response:
        headers = {}
        if result.warnings:
            headers["Warning"] = ", ".join(f'299 - "{w.replace(chr(34), chr(39))}"' for w in result.warnings)
        return _json_response(self.registry.output(req.rt, req.version, result.obj), status=status, headers=headers)

    def _table(self, request: web.Request, req: _Request, objs: list[Obj], cont: str = "") -> dict[str, Any]:
        include = request.query.get("includeObject", "Metadata")
        return to_table(
            req.rt,
            req.version,
            objs,
            datetime.now(UTC),
            include_object=include,
            resource_version=str(self.store.rv),
            cont=cont,
        )

    def _list(self, request: web.Request, req: _Request, items: list[Obj]) -> web.Response:
        q = request.query
        items = sorted(items, key=lambda o: (o["metadata"].get("namespace") or "", o["metadata"]["name"]))
        cont_token = ""
        remaining = 0
        if q.get("continue"):
            try:
                start = json.loads(base64.urlsafe_b64decode(q["continue"].encode()))
                after = (start["ns"], start["name"])
            except (ValueError, KeyError, TypeError) as exc:
                raise bad_request(f"continue: the continue token is not valid: {exc}") from exc
            items = [o for o in items if (o["metadata"].get("namespace") or "", o["metadata"]["name"]) > after]
        limit = int(q.get("limit") or 0)
        if limit > 0 and len(items) > limit:
            remaining = len(items) - limit
            items = items[:limit]
            last = items[-1]["metadata"]
            cont_token = base64.urlsafe_b64encode(
                _dumps({"ns": last.get("namespace") or "", "name": last["name"]})
            ).decode()
        rv = str(self.store.rv)
        if _wants_table(request):
            objs = [self.registry.output(req.rt, req.version, o) for o in items]
            return _json_response(self._table(request, req, objs, cont_token))
        meta: dict[str, Any] = {"resourceVersion": rv}
        if cont_token:
            meta["continue"] = cont_token
            meta["remainingItemCount"] = remaining
        head = _dumps({"kind": req.rt.list_kind, "apiVersion": req.rt.api_version(req.version), "metadata": meta})
        api_version = req.rt.api_version(req.version)
        if all(o.get("apiVersion") == api_version for o in items):
            body = b",".join(self.store.encoded(req.rt.key, o) for o in items)
        else:
            body = b",".join(_dumps(self.registry.output(req.rt, req.version, o)) for o in items)
        return web.Response(body=head[:-1] + b',"items":[' + body + b"]}", content_type=_JSON)

    async def _watch(self, request: web.Request, req: _Request, labels: Any, fields: Any) -> web.StreamResponse:
        q = request.query
        rt = req.rt
        store = self.store
        try:
            timeout = float(q.get("timeoutSeconds") or 0)
        except ValueError as exc:
            raise bad_request(f"timeoutSeconds: {q['timeoutSeconds']!r} is not a number of seconds") from exc
        if timeout <= 0:
            # Unset (or 0): the real server's default, a random 30-60 minutes so watches do not all end at once.
            timeout = 1800.0 * (1 + random.random())
        bookmarks = _truthy(q.get("allowWatchBookmarks")) and "allowWatchBookmarks" in q
        initial_end = _truthy(q.get("sendInitialEvents")) and "sendInitialEvents" in q
        as_table = _wants_table(request)
        rv_param = q.get("resourceVersion") or ""
        w = store.watch(rt.key, req.namespace, labels, fields)
        snapshot_rv = store.rv
        try:
            initial: list[Event] | None
            if rv_param in ("", "0") or initial_end:
                initial = [
                    Event("ADDED", int(o["metadata"]["resourceVersion"]), rt.key, o, None)
                    for o in store.select(rt.key, req.namespace, labels, fields)
                ]
            else:
                try:
                    since = int(rv_param)
                except ValueError as exc:
                    raise bad_request(f"resourceVersion: {rv_param!r} is not a valid resource version") from exc
                history = store.history_since(rt.key, since)
                initial = None if history is None else [e for e in (w.translate(h) for h in history) if e is not None]
            resp = web.StreamResponse(status=200, headers={"Content-Type": _JSON, "Cache-Control": "no-cache"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            if initial is None:
                gone = status_object(410, "Expired", f"too old resource version: {rv_param} ({store.rv})")
                await resp.write(_dumps({"type": "ERROR", "object": gone}) + b"\n")
                return resp
            first = [True]
            encode = self._watch_encoder(request, req, as_table, first)
            head = b"".join(encode(e) for e in initial)
            if initial_end:
                # The snapshot's resourceVersion, not the current one: later changes are still in the queue.
                head += self._bookmark(req, {"k8s.io/initial-events-end": "true"}, rv=snapshot_rv)
            if head:
                await resp.write(head)
            await self._pump(resp, w, encode, req, timeout, bookmarks)
            return resp
        except ConnectionError as exc:
            # aiohttp's "Cannot write to closing transport" and plain resets alike: the watcher hung up.
            log.debug("watch on %s ended by the client: %s", rt.key, exc)
            return resp
        finally:
            store.unwatch(w)

    async def _pump(
        self, resp: web.StreamResponse, w: Watcher, encode: Any, req: _Request, duration: float, bookmarks: bool
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + duration
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            wait = min(remaining, self.bookmark_interval) if bookmarks else remaining
            try:
                item = await asyncio.wait_for(w.queue.get(), timeout=wait)
            except TimeoutError:
                # A bookmark promises every earlier event was sent: only when nothing is pending (checked and
                # built without yielding, so no write can slip in between).
                if bookmarks and not w.closed and w.queue.empty():
                    await resp.write(self._bookmark(req))
                continue
            if item is CLOSE:
                if w.overflowed:
                    log.warning(
                        "closed a watch on %s that fell %d events behind; the client resumes or relists",
                        req.rt.key,
                        self.store.watch_queue_size,
                    )
                return
            batch = [encode(item)]
            while not w.queue.empty() and len(batch) < 500:
                more = w.queue.get_nowait()
                if more is CLOSE:
                    await resp.write(b"".join(batch))
                    return
                batch.append(encode(more))
            await resp.write(b"".join(batch))
        # Time is up: send what is pending, then (in the same synchronous step) where the client stands.
        tail = []
        while not w.queue.empty():
            more = w.queue.get_nowait()
            if more is CLOSE:
                break
            tail.append(encode(more))
        if bookmarks and not w.closed:
            tail.append(self._bookmark(req))
        if tail:
            await resp.write(b"".join(tail))

    def _bookmark(self, req: _Request, annotations: dict[str, str] | None = None, rv: int | None = None) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(self.store.rv if rv is None else rv)}
        if annotations:
            meta["annotations"] = annotations
        return (
            _dumps(
                {
                    "type": "BOOKMARK",
                    "object": {"kind": req.rt.kind, "apiVersion": req.rt.api_version(req.version), "metadata": meta},
                }
            )
            + b"\n"
        )

    def _watch_encoder(self, request: web.Request, req: _Request, as_table: bool, first: list[bool]) -> Any:
        api_version = req.rt.api_version(req.version)
        reg = self.registry

        def encode(e: Event) -> bytes:
            if as_table:
                table = self._table(request, req, [reg.output(req.rt, req.version, e.obj)])
                if not first[0]:
                    table["columnDefinitions"] = []
                first[0] = False
                return _dumps({"type": e.type, "object": table}) + b"\n"
            if e.obj.get("apiVersion") == api_version:
                return e.encoded()
            return _dumps({"type": e.type, "object": reg.output(req.rt, req.version, e.obj)}) + b"\n"

        return encode


def _wants_table(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    first = accept.split(",")[0]
    return "as=Table" in first
