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


def _map_entry(v: int | bytes) -> tuple[str, bytes]:
    key, value = "", b""
    for n, x in _fields(v if isinstance(v, bytes) else b""):
        if n == 1:
            key = _str(x)
        elif n == 2 and isinstance(x, bytes):
            value = x
    return key, value


def _object_meta(buf: bytes) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    names = {1: "name", 2: "generateName", 3: "namespace"}
    for n, v in _fields(buf):
        if n in names:
            meta[names[n]] = _str(v)
        elif n in (11, 12):
            k, val = _map_entry(v)
            meta.setdefault("labels" if n == 11 else "annotations", {})[k] = val.decode()
        elif n == 14:
            meta.setdefault("finalizers", []).append(_str(v))
    return meta


def _namespace(buf: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n, v in _fields(buf):
        if n == 1 and isinstance(v, bytes):
            out["metadata"] = _object_meta(v)
        elif n == 2 and isinstance(v, bytes):
            out["spec"] = {"finalizers": [_str(x) for m, x in _fields(v) if m == 1]}
    return out


def _config_map(buf: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n, v in _fields(buf):
        if n == 1 and isinstance(v, bytes):
            out["metadata"] = _object_meta(v)
        elif n == 2:
            k, val = _map_entry(v)
            out.setdefault("data", {})[k] = val.decode()
        elif n == 3:
            k, val = _map_entry(v)
            out.setdefault("binaryData", {})[k] = base64.b64encode(val).decode()
        elif n == 4:
            out["immutable"] = bool(v)
    return out


def _secret(buf: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n, v in _fields(buf):
        if n == 1 and isinstance(v, bytes):
            out["metadata"] = _object_meta(v)
        elif n == 2:
            k, val = _map_entry(v)
            out.setdefault("data", {})[k] = base64.b64encode(val).decode()
        elif n == 3:
            out["type"] = _str(v)
        elif n == 4:
            k, val = _map_entry(v)
            out.setdefault("stringData", {})[k] = val.decode()
        elif n == 5:
            out["immutable"] = bool(v)
    return out


def _service_account(buf: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n, v in _fields(buf):
        if n == 1 and isinstance(v, bytes):
            out["metadata"] = _object_meta(v)
        elif n == 3 and isinstance(v, bytes):
            name = next((_str(x) for m, x in _fields(v) if m == 1), "")
            out.setdefault("imagePullSecrets", []).append({"name": name})
        elif n == 4:
            out["automountServiceAccountToken"] = bool(v)
    return out


_KINDS: dict[tuple[str, str], Callable[[bytes], dict[str, Any]]] = {
    ("v1", "Namespace"): _namespace,
    ("v1", "ConfigMap"): _config_map,
    ("v1", "Secret"): _secret,
    ("v1", "ServiceAccount"): _service_account,
}


def decode(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf request body; 415 for kinds this server cannot read as protobuf."""
    if not body.startswith(_MAGIC):
        raise ApiError(400, "BadRequest", "a protobuf body must start with the k8s\\x00 envelope")
    api_version = kind = ""
    raw = b""
    try:
        for n, v in _fields(body[len(_MAGIC) :]):
            if n == 1 and isinstance(v, bytes):
                for m, x in _fields(v):
                    if m == 1:
                        api_version = _str(x)
                    elif m == 2:
                        kind = _str(x)
            elif n == 2 and isinstance(v, bytes):
                raw = v
        decoder = _KINDS.get((api_version, kind))
        if decoder is None:
            supported = ", ".join(k for _, k in _KINDS)
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
