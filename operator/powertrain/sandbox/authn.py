"""Who a request is: the kubeconfig's admin token, or a ServiceAccount token the sandbox issued.

[Authenticating: "Service account tokens"; Configure Service Accounts for Pods: "Bound service account token
volume"; TokenRequest API]. `POST serviceaccounts/NAME/token` issues a JWT carrying the `kubernetes.io` claims
of a bound token: namespace, service account (name, uid) and, when bound to a Pod, the pod and the node it runs
on. A request with such a token authenticates as `system:serviceaccount:NS:NAME`, in the groups
`system:serviceaccounts`, `system:serviceaccounts:NS` and `system:authenticated`, with the userInfo extras the
API server derives from the claims (`authentication.kubernetes.io/pod-name`, `pod-uid`, `node-name`,
`node-uid`, `credential-id`) — what ValidatingAdmissionPolicies read as `request.userInfo.extra`.

The token stops working once it expires, or once its ServiceAccount or bound Pod is deleted (or recreated with
another uid), as with a real server; a kubelet's pod token (3607 s) is valid for a year, as with the API
server's default --service-account-extend-token-expiration. Differences: tokens are signed with HMAC-SHA256 by a
per-server key (a real server signs RS256 with a key it publishes for OIDC discovery, which the sandbox does not
serve), and only Pod and Secret bindings are accepted.
"""

from __future__ import annotations

import base64
import contextvars
import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from powertrain.sandbox.errors import ApiError, bad_request, invalid, not_found
from powertrain.sandbox.store import Store

ADMIN_USER = "kubernetes-admin"
MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
SA_PREFIX = "system:serviceaccount:"
NODE_NAME_EXTRA = "authentication.kubernetes.io/node-name"
ISSUER = "https://kubernetes.default.svc.cluster.local"
_DEFAULT_EXPIRY = 3600
KUBELET_TOKEN_SECONDS = 3607
_EXTENDED_SECONDS = 365 * 24 * 3600
_MIN_EXPIRY = 600


@dataclass(frozen=True)
class UserInfo:
    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: dict[str, list[str]] = field(default_factory=dict)

    @property
    def is_admin(self) -> bool:
        return MASTERS in self.groups

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"username": self.username, "groups": list(self.groups)}
        if self.uid:
            out["uid"] = self.uid
        if self.extra:
            out["extra"] = {k: list(v) for k, v in self.extra.items()}
        return out


ADMIN = UserInfo(ADMIN_USER, groups=(MASTERS, AUTHENTICATED))

# The user of the request being served: admission (powertrain.sandbox.admission) reads it; the registry's
# own follow-up writes (garbage collection, defaults) run under the request that caused them.
current_user: contextvars.ContextVar[UserInfo] = contextvars.ContextVar("sandbox_user", default=ADMIN)
current_subresource: contextvars.ContextVar[str] = contextvars.ContextVar("sandbox_subresource", default="")


def service_account_user(
    namespace: str, name: str, uid: str = "", extra: dict[str, list[str]] | None = None
) -> UserInfo:
    return UserInfo(
        f"{SA_PREFIX}{namespace}:{name}",
        uid,
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", AUTHENTICATED),
        extra or {},
    )


def split_service_account(username: str) -> tuple[str, str] | None:
    if not username.startswith(SA_PREFIX):
        return None
    ns, _, name = username.removeprefix(SA_PREFIX).partition(":")
    return (ns, name) if ns and name else None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class _Verified:
    user: UserInfo
    expires: float
    sa: tuple[str, str, str]  # namespace, name, uid
    bound: tuple[str, str, str, str] | None  # storage key, namespace, name, uid


class Authenticator:
    def __init__(self, admin_token: str, store: Store, clock: Any = time.time) -> None:
        self.admin_token = admin_token
        self.store = store
        self.clock = clock
        self._key = secrets.token_bytes(32)
        self._verified: dict[str, _Verified] = {}

    def authenticate(self, header: str) -> UserInfo | None:
        """The user behind an `Authorization` header, None when it is not a valid credential (401)."""
        if header[:7].lower() != "bearer ":  # the scheme is case-insensitive; client libraries send "bearer"
            return None
        token = header[7:].strip()
        if hmac.compare_digest(token, self.admin_token):
            return ADMIN
        v = self._verified.get(token)
        if v is None:
            v = self._verify(token)
            if v is None:
                return None
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[token] = v
        if self.clock() >= v.expires:
            return None
        ns, name, uid = v.sa
        sa = self.store.get("serviceaccounts", ns, name)
        if sa is None or sa["metadata"]["uid"] != uid:
            return None
        if v.bound is not None:
            key, bns, bname, buid = v.bound
            obj = self.store.get(key, bns, bname)
            if obj is None or obj["metadata"]["uid"] != buid or obj["metadata"].get("deletionTimestamp"):
                return None
        return v.user

    def _verify(self, token: str) -> _Verified | None:
        parts = token.split(".")
        if len(parts) != 3:
            return None
        signed = f"{parts[0]}.{parts[1]}".encode()
        want = hmac.new(self._key, signed, hashlib.sha256).digest()
        try:
            if not hmac.compare_digest(want, _unb64(parts[2])):
                return None
            claims = json.loads(_unb64(parts[1]))
        except ValueError:
            return None
        k8s = claims.get("kubernetes.io") or {}
        ns = k8s.get("namespace")
        sa = k8s.get("serviceaccount") or {}
        if not ns or not sa.get("name"):
            return None
        extra: dict[str, list[str]] = {"authentication.kubernetes.io/credential-id": [f"JTI={claims.get('jti')}"]}
        bound = None
        if pod := k8s.get("pod"):
            extra["authentication.kubernetes.io/pod-name"] = [pod["name"]]
            extra["authentication.kubernetes.io/pod-uid"] = [pod["uid"]]
            bound = ("pods", ns, pod["name"], pod["uid"])
        if secret := k8s.get("secret"):
            bound = ("secrets", ns, secret["name"], secret["uid"])
        if node := k8s.get("node"):
            extra[NODE_NAME_EXTRA] = [node["name"]]
            extra["authentication.kubernetes.io/node-uid"] = [node["uid"]]
        user = service_account_user(ns, sa["name"], sa.get("uid", ""), extra)
        return _Verified(user, float(claims.get("exp", 0)), (ns, sa["name"], sa.get("uid", "")), bound)

    def issue(self, namespace: str, name: str, request: Any) -> dict[str, Any]:
        """POST serviceaccounts/NAME/token: a TokenRequest answered with its status.token."""
        sa = self.store.get("serviceaccounts", namespace, name)
        if sa is None:
            raise not_found("serviceaccounts", name)
        if request is not None and not isinstance(request, dict):
            raise bad_request("the body must be an authentication.k8s.io/v1 TokenRequest")
        spec = dict((request or {}).get("spec") or {})
        expiry = int(spec.get("expirationSeconds") or _DEFAULT_EXPIRY)
        if expiry < _MIN_EXPIRY:
            raise invalid(
                "TokenRequest",
                name,
                "authentication.k8s.io",
                [
                    {
                        "reason": "FieldValueInvalid",
                        "field": "spec.expirationSeconds",
                        "message": f"Invalid value: {expiry}: may not specify a duration less than 10 minutes",
                    }
                ],
            )
        now = int(self.clock())
        ref: dict[str, Any] = dict(spec.get("boundObjectRef") or {})
        # --service-account-extend-token-expiration (on by default): a kubelet's pod token (exactly 3607 s)
        # stays valid for a year, so clients that never reread it keep working; `warnafter` marks its real end.
        extended = expiry == KUBELET_TOKEN_SECONDS and ref.get("kind") == "Pod"
        claims: dict[str, Any] = {
            "aud": list(spec.get("audiences") or [ISSUER]),
            "exp": now + (_EXTENDED_SECONDS if extended else expiry),
            "iat": now,
            "nbf": now,
            "iss": ISSUER,
            "jti": str(uuid.uuid4()),
            "sub": f"{SA_PREFIX}{namespace}:{name}",
        }
        k8s: dict[str, Any] = {
            "namespace": namespace,
            "serviceaccount": {"name": name, "uid": sa["metadata"]["uid"]},
        }
        if extended:
            k8s["warnafter"] = now + expiry
        if ref:
            kind, ref_name = ref.get("kind"), ref.get("name")
            if kind not in ("Pod", "Secret"):
                raise invalid(
                    "TokenRequest",
                    name,
                    "authentication.k8s.io",
                    [
                        {
                            "reason": "FieldValueNotSupported",
                            "field": "spec.boundObjectRef.kind",
                            "message": f'Unsupported value: "{kind}": supported values: "Pod", "Secret"',
                        }
                    ],
                )
            key = "pods" if kind == "Pod" else "secrets"
            obj = self.store.get(key, namespace, str(ref_name))
            if obj is None:
                raise not_found(key, str(ref_name))
            if ref.get("uid") and ref["uid"] != obj["metadata"]["uid"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f"the UID in the bound object reference ({ref['uid']}) does not match the UID in record. "
                    "The object might have been deleted and then recreated",
                )
            k8s[kind.lower()] = {"name": ref_name, "uid": obj["metadata"]["uid"]}
            node_name = (obj.get("spec") or {}).get("nodeName") if kind == "Pod" else None
            if node_name:
                node = self.store.get("nodes", "", node_name)
                if node is not None:
                    k8s["node"] = {"name": node_name, "uid": node["metadata"]["uid"]}
        claims["kubernetes.io"] = k8s
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        sig = _b64(hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        expires = datetime.fromtimestamp(now + expiry, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
            "spec": {
                "audiences": claims["aud"],
                "expirationSeconds": expiry,
                "boundObjectRef": ref or None,
            },
            "status": {"token": f"{header}.{payload}.{sig}", "expirationTimestamp": expires},
        }
