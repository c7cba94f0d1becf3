"""Protobuf request bodies (API concepts → "Alternate representations of resources"), decoded directly.

kubectl only sends a few of these fields; the bodies here are built by hand with the field numbers of the core/v1
and meta/v1 generated.proto files, so every field the decoder claims to read is checked.
"""

from __future__ import annotations

import pytest

from powertrain.sandbox.errors import ApiError
from powertrain.sandbox.protobuf import decode


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _bytes(number: int, data: bytes | str) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return _varint(number << 3 | 2) + _varint(len(raw)) + raw


def _int(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _entry(number: int, key: str, value: bytes | str) -> bytes:
    return _bytes(number, _bytes(1, key) + _bytes(2, value))


def _envelope(kind: str, raw: bytes) -> bytes:
    return b"k8s\x00" + _bytes(1, _bytes(1, "v1") + _bytes(2, kind)) + _bytes(2, raw)


META = _bytes(
    1,
    _bytes(1, "s")
    + _bytes(3, "team")
    + _entry(11, "app", "web")
    + _entry(12, "note", "hi")
    + _bytes(14, "keep")
    + _int(99, 7),  # a field this server does not know is skipped
)


def test_every_kind_decodes_to_the_json_kubectl_would_have_sent() -> None:
    meta = {"name": "s", "namespace": "team", "labels": {"app": "web"}, "annotations": {"note": "hi"}}
    meta["finalizers"] = ["keep"]
    secret = decode(
        _envelope(
            "Secret", META + _entry(2, "key", b"\x00\xff") + _bytes(3, "Opaque") + _entry(4, "plain", "t") + _int(5, 0)
        )
    )
    assert secret == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        "data": {"key": "AP8="},
        "type": "Opaque",
        "stringData": {"plain": "t"},
        "immutable": False,
    }
    config = decode(_envelope("ConfigMap", META + _entry(2, "a", "1") + _entry(3, "b", b"\x01") + _int(4, 1)))
    assert (config["data"], config["binaryData"], config["immutable"]) == ({"a": "1"}, {"b": "AQ=="}, True)
    account = decode(_envelope("ServiceAccount", META + _bytes(3, _bytes(1, "pull")) + _int(4, 1)))
    assert account["imagePullSecrets"] == [{"name": "pull"}]
    assert account["automountServiceAccountToken"] is True
    namespace = decode(_envelope("Namespace", _bytes(1, _bytes(1, "n")) + _bytes(2, _bytes(1, "kubernetes"))))
    assert namespace == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "n"},
        "spec": {"finalizers": ["kubernetes"]},
    }


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (b"{}", 400, "must start with the k8s\\x00 envelope"),
        (b"k8s\x00\x0a\xff", 400, "could not be decoded: truncated varint"),
        (_envelope("Pod", META), 415, "send Pod as application/json"),
    ],
)
def test_bodies_it_cannot_read_are_refused_with_a_reason(body: bytes, code: int, message: str) -> None:
    with pytest.raises(ApiError) as err:
        decode(body)
    assert err.value.code == code
    assert message in err.value.message
