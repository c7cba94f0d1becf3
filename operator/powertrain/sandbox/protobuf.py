"""Just enough of the Kubernetes protobuf encoding for the kinds `kubectl create <kind>` sends that way.

kubectl's typed clients (`kubectl create namespace|configmap|secret|serviceaccount`) send request bodies as
`application/vnd.kubernetes.protobuf` (API concepts: "Alternate representations of resources" → protobuf
envelope: the `k8s\\x00` magic, then a runtime.Unknown wrapping the typed message). Responses are always JSON,
which the same clients accept. Field numbers are those of the core/v1 and meta/v1 generated.proto files.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

from powertrain.sandbox.errors import ApiError

CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
_MAGIC = b"k8s\x00"


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if i >= len(buf):
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
            yield number, value
        elif wire == 2:
            size, i = _varint(buf, i)
            yield number, buf[i : i + size]
            i += size
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def _str(v: int | bytes) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _bytes(v: int | bytes) -> bytes:
    # A length-delimited field arrives as bytes; a varint where a message belongs decodes as an empty message.
    return v if isinstance(v, bytes) else b""


def _map_entry(v: int | bytes) -> tuple[str, bytes]:
    key, value = "", b""
    for n, x in _fields(_bytes(v)):
        if n == 1:
            key = _str(x)
        elif n == 2 and isinstance(x, bytes):
            value = x
    return key, value


# How one field lands in the JSON object: set it, add to a map under its name, or append to a list.
_Setter = Callable[[dict[str, Any], int | bytes], None]


def _one(name: str, convert: Callable[[int | bytes], Any]) -> _Setter:
    def put(out: dict[str, Any], v: int | bytes) -> None:
        value = convert(v)
        if value == "" and convert is _str:
            return  # Go's protobuf writes unset (non-pointer) strings as ""; its JSON omits them
        out[name] = value

    return put


def _entry(name: str, convert: Callable[[bytes], str]) -> _Setter:
    def put(out: dict[str, Any], v: int | bytes) -> None:
        k, val = _map_entry(v)
        out.setdefault(name, {})[k] = convert(val)

    return put


def _each(name: str, convert: Callable[[int | bytes], Any]) -> _Setter:
    def put(out: dict[str, Any], v: int | bytes) -> None:
        out.setdefault(name, []).append(convert(v))

    return put


def _message(fields: dict[int, _Setter]) -> Callable[[int | bytes], dict[str, Any]]:
    """A decoder for one message type: field number → where its value goes; unknown fields are skipped."""

    def decode_message(v: int | bytes) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for n, x in _fields(_bytes(v)):
            put = fields.get(n)
            if put is not None:
                put(out, x)
        return out

    return decode_message


def _b64(v: bytes) -> str:
    return base64.b64encode(v).decode()


_OBJECT_META = _message(
    {
        1: _one("name", _str),
        2: _one("generateName", _str),
        3: _one("namespace", _str),
        11: _entry("labels", bytes.decode),
        12: _entry("annotations", bytes.decode),
        14: _each("finalizers", _str),
    }
)
_METADATA = _one("metadata", _OBJECT_META)

_KINDS: dict[tuple[str, str], Callable[[int | bytes], dict[str, Any]]] = {
    ("v1", "Namespace"): _message({1: _METADATA, 2: _one("spec", _message({1: _each("finalizers", _str)}))}),
    ("v1", "ConfigMap"): _message(
        {1: _METADATA, 2: _entry("data", bytes.decode), 3: _entry("binaryData", _b64), 4: _one("immutable", bool)}
    ),
    ("v1", "Secret"): _message(
        {
            1: _METADATA,
            2: _entry("data", _b64),
            3: _one("type", _str),
            4: _entry("stringData", bytes.decode),
            5: _one("immutable", bool),
        }
    ),
    ("v1", "ServiceAccount"): _message(
        {
            1: _METADATA,
            3: _each("imagePullSecrets", _message({1: _one("name", _str)})),
            4: _one("automountServiceAccountToken", bool),
        }
    ),
}
# What kubectl's typed clients also send as protobuf: access reviews (`kubectl auth can-i`, authorization/v1
# generated.proto), identity reviews (`kubectl auth whoami`) and token requests (`kubectl create token`,
# authentication/v1).
_RESOURCE_ATTRIBUTES = _message(
    {
        1: _one("namespace", _str),
        2: _one("verb", _str),
        3: _one("group", _str),
        4: _one("version", _str),
        5: _one("resource", _str),
        6: _one("subresource", _str),
        7: _one("name", _str),
    }
)
_KINDS[("authorization.k8s.io/v1", "SelfSubjectAccessReview")] = _message(
    {
        1: _METADATA,
        2: _one(
            "spec",
            _message(
                {
                    1: _one("resourceAttributes", _RESOURCE_ATTRIBUTES),
                    2: _one("nonResourceAttributes", _message({1: _one("path", _str), 2: _one("verb", _str)})),
                }
            ),
        ),
    }
)
_KINDS[("authentication.k8s.io/v1", "SelfSubjectReview")] = _message({1: _METADATA})
_KINDS[("authentication.k8s.io/v1", "TokenRequest")] = _message(
    {
        1: _METADATA,
        2: _one(
            "spec",
            _message(
                {
                    1: _each("audiences", _str),
                    4: _one("expirationSeconds", int),
                    3: _one(
                        "boundObjectRef",
                        _message(
                            {
                                1: _one("kind", _str),
                                2: _one("apiVersion", _str),
                                3: _one("name", _str),
                                4: _one("uid", _str),
                            }
                        ),
                    ),
                }
            ),
        ),
    }
)
# `kubectl create role|clusterrole|rolebinding|clusterrolebinding` (rbac/v1 generated.proto).
_POLICY_RULE = _message(
    {
        1: _each("verbs", _str),
        2: _each("apiGroups", _str),
        3: _each("resources", _str),
        4: _each("resourceNames", _str),
        5: _each("nonResourceURLs", _str),
    }
)
_SUBJECT = _message(
    {1: _one("kind", _str), 2: _one("apiGroup", _str), 3: _one("name", _str), 4: _one("namespace", _str)}
)
_ROLE_REF = _message({1: _one("apiGroup", _str), 2: _one("kind", _str), 3: _one("name", _str)})
_LABEL_SELECTOR = _message({1: _entry("matchLabels", bytes.decode)})
_ROLE = _message({1: _METADATA, 2: _each("rules", _POLICY_RULE)})
_BINDING = _message({1: _METADATA, 2: _each("subjects", _SUBJECT), 3: _one("roleRef", _ROLE_REF)})
_KINDS[("rbac.authorization.k8s.io/v1", "Role")] = _ROLE
_KINDS[("rbac.authorization.k8s.io/v1", "ClusterRole")] = _message(
    {
        1: _METADATA,
        2: _each("rules", _POLICY_RULE),
        3: _one("aggregationRule", _message({1: _each("clusterRoleSelectors", _LABEL_SELECTOR)})),
    }
)
_KINDS[("rbac.authorization.k8s.io/v1", "RoleBinding")] = _BINDING
_KINDS[("rbac.authorization.k8s.io/v1", "ClusterRoleBinding")] = _BINDING

# `kubectl create deployment|job` (apps/v1, batch/v1, core/v1 generated.proto): the fields those commands set.
_CONTAINER = _message(
    {
        1: _one("name", _str),
        2: _one("image", _str),
        3: _each("command", _str),
        4: _each("args", _str),
        5: _one("workingDir", _str),
        6: _each("ports", _message({1: _one("name", _str), 3: _one("containerPort", int), 4: _one("protocol", _str)})),
        7: _each("env", _message({1: _one("name", _str), 2: _one("value", _str)})),
        14: _one("imagePullPolicy", _str),
    }
)
_POD_SPEC = _message(
    {
        2: _each("containers", _CONTAINER),
        3: _one("restartPolicy", _str),
        4: _one("terminationGracePeriodSeconds", int),
        7: _entry("nodeSelector", bytes.decode),
        8: _one("serviceAccountName", _str),
    }
)
_TEMPLATE = _message({1: _METADATA, 2: _one("spec", _POD_SPEC)})
_KINDS[("apps/v1", "Deployment")] = _message(
    {
        1: _METADATA,
        2: _one(
            "spec",
            _message(
                {
                    1: _one("replicas", int),
                    2: _one("selector", _LABEL_SELECTOR),
                    3: _one("template", _TEMPLATE),
                    4: _one("strategy", _message({1: _one("type", _str)})),
                    6: _one("revisionHistoryLimit", int),
                    7: _one("paused", bool),
                }
            ),
        ),
    }
)
_KINDS[("batch/v1", "Job")] = _message(
    {
        1: _METADATA,
        2: _one(
            "spec",
            _message(
                {
                    1: _one("parallelism", int),
                    2: _one("completions", int),
                    3: _one("activeDeadlineSeconds", int),
                    6: _one("template", _TEMPLATE),
                    7: _one("backoffLimit", int),
                }
            ),
        ),
    }
)
# client-go's typed Delete (helm purging its release Secrets) sends meta/v1 DeleteOptions.
_DELETE_OPTIONS = _message(
    {
        1: _one("gracePeriodSeconds", int),
        2: _one("preconditions", _message({1: _one("uid", _str), 2: _one("resourceVersion", _str)})),
        3: _one("orphanDependents", bool),
        4: _one("propagationPolicy", _str),
        5: _each("dryRun", _str),
    }
)
for _api_version in ("v1", "meta.k8s.io/v1"):
    _KINDS[(_api_version, "DeleteOptions")] = _DELETE_OPTIONS
# runtime.Unknown's TypeMeta: which decoder applies.
_TYPE_META = _message({1: _one("apiVersion", _str), 2: _one("kind", _str)})


def decode(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf request body; 415 for kinds this server cannot read as protobuf."""
    if not body.startswith(_MAGIC):
        raise ApiError(400, "BadRequest", "a protobuf body must start with the k8s\\x00 envelope")
    api_version = kind = ""
    raw = b""
    try:
        for n, v in _fields(body[len(_MAGIC) :]):
            if n == 1:
                type_meta = _TYPE_META(v)
                api_version, kind = type_meta.get("apiVersion", ""), type_meta.get("kind", "")
            elif n == 2:
                raw = _bytes(v)
        decoder = _KINDS.get((api_version, kind))
        if decoder is None:
            supported = ", ".join(dict.fromkeys(k for _, k in _KINDS))
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the sandbox reads protobuf bodies only for {supported}; "
                f"send {kind or 'this object'} as application/json",
            )
        obj = decoder(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "BadRequest", f"the protobuf body could not be decoded: {exc}") from exc
    obj["apiVersion"], obj["kind"] = api_version, kind
    return obj
