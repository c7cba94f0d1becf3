"""Which GPUs each pod holds, from the kubelet's pod-resources API (gRPC over a unix socket), as dcgm-exporter does.

The kubelet serves `v1.PodResourcesLister` on /var/lib/kubelet/pod-resources/kubelet.sock. Its messages are
Kubernetes' own (k8s.io/kubelet/pkg/apis/podresources/v1/api.proto); the agent calls only `List`, whose
request is empty, and reads only these fields of the answer:

    ListPodResourcesResponse { repeated PodResources pod_resources = 1; }
    PodResources             { string name = 1; string namespace = 2; repeated ContainerResources containers = 3; }
    ContainerResources       { string name = 1; repeated ContainerDevices devices = 2; ... }
    ContainerDevices         { string resource_name = 1; repeated string device_ids = 2; ... }

So the answer is decoded here from the protobuf wire format by hand (varints and length-delimited fields;
every other field is skipped, as protobuf requires of unknown ones) instead of generated with protoc: no build
step and no protobuf runtime in the agent image. The sandbox's simulated kubelet encodes its answers with its
own writer, so the tests run this decoder against an independent implementation over real gRPC.

Device IDs are whatever the device plugin advertises: GPU UUIDs by default (NVIDIA's plugin), GPU indices
with `--device-id-strategy=index`; `gpu_owners` accepts both. The kubelet names pods by namespace/name only.
"""

from __future__ import annotations

import logging
import stat
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_SOCKET = Path("/var/lib/kubelet/pod-resources/kubelet.sock")
LIST_METHOD = "/v1.PodResourcesLister/List"
GPU_RESOURCE = "nvidia.com/gpu"
# Kubernetes caps pod-resources answers at 16 MiB by default; one node's pods need a few KiB.
MAX_MESSAGE_BYTES = 16 << 20


class PodResourcesError(RuntimeError):
    """The kubelet's pod-resources API did not answer or answered something unreadable."""


@dataclass(frozen=True, slots=True)
class PodDevices:
    """The devices the kubelet allocated to one pod (all containers together), by resource name."""

    namespace: str
    name: str
    devices: Mapping[str, tuple[str, ...]]


# --- protobuf wire format (only what the answer above uses) --------------------------------------------------


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if i >= len(buf):
            raise PodResourcesError("pod-resources answer is truncated (inside a varint)")
        byte = buf[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, i
        shift += 7
        if shift > 63:
            raise PodResourcesError("pod-resources answer has a varint longer than 10 bytes")


def _fields(buf: bytes) -> Iterator[tuple[int, bytes | None]]:
    """(field number, payload) of every field; payload is None for the non-length-delimited ones (skipped)."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, i = _varint(buf, i)
            yield number, None
        elif wire == 2:
            size, i = _varint(buf, i)
            if i + size > len(buf):
                raise PodResourcesError("pod-resources answer is truncated (inside a field)")
            yield number, buf[i : i + size]
            i += size
        elif wire == 1:
            i += 8
            yield number, None
        elif wire == 5:
            i += 4
            yield number, None
        else:
            raise PodResourcesError(f"pod-resources answer uses protobuf wire type {wire}, which proto3 never writes")
    if i != len(buf):
        raise PodResourcesError("pod-resources answer is truncated (a fixed-size field)")


def _text(payload: bytes) -> str:
    try:
        return payload.decode()
    except UnicodeDecodeError:
        raise PodResourcesError("pod-resources answer has a string that is not UTF-8") from None


def _container_devices(payload: bytes) -> tuple[str, list[str]]:
    resource, ids = "", []
    for number, value in _fields(payload):
        if value is None:
            continue
        if number == 1:
            resource = _text(value)
        elif number == 2:
            ids.append(_text(value))
    return resource, ids


def _pod(payload: bytes) -> PodDevices:
    name = namespace = ""
    devices: dict[str, list[str]] = {}
    for number, value in _fields(payload):
        if value is None:
            continue
        if number == 1:
            name = _text(value)
        elif number == 2:
            namespace = _text(value)
        elif number == 3:
            for c_number, c_value in _fields(value):
                if c_number == 2 and c_value is not None:
                    resource, ids = _container_devices(c_value)
                    devices.setdefault(resource, []).extend(ids)
    return PodDevices(namespace, name, {k: tuple(v) for k, v in devices.items()})


def decode_list_response(data: bytes) -> list[PodDevices]:
    """A ListPodResourcesResponse, as the pods it lists."""
    return [_pod(value) for number, value in _fields(data) if number == 1 and value is not None]


def _empty_request(_request: object) -> bytes:
    return b""  # ListPodResourcesRequest has no fields


# --- the client -------------------------------------------------------------------------------------------


class PodResourcesClient:
    """A blocking client of the kubelet's PodResourcesLister, for the agent's worker threads."""

    def __init__(self, socket: Path = DEFAULT_SOCKET, timeout_s: float = 2.0) -> None:
        self.socket = socket
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._channel: Any = None
        self._list: Any = None

    def available(self) -> bool:
        """Whether the kubelet's socket is there (a node without it falls back to cgroups)."""
        try:
            return stat.S_ISSOCK(self.socket.stat().st_mode)
        except OSError:
            return False

    def list(self) -> list[PodDevices]:
        import grpc

        with self._lock:
            if self._list is None:
                self._channel = grpc.insecure_channel(
                    f"unix://{self.socket.absolute()}",
                    options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)],
                )
                self._list = self._channel.unary_unary(
                    LIST_METHOD, request_serializer=_empty_request, response_deserializer=decode_list_response
                )
            call = self._list
        try:
            pods: list[PodDevices] = call(b"", timeout=self.timeout_s)
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else None
            details = exc.details() if hasattr(exc, "details") else str(exc)
            raise PodResourcesError(f"kubelet pod-resources List on {self.socket} failed: {code}: {details}") from None
        return pods

    def close(self) -> None:
        with self._lock:
            if self._channel is not None:
                self._channel.close()
            self._channel = self._list = None


def gpu_owners(
    pods: list[PodDevices], gpus_by_uuid: Mapping[str, int], resource: str = GPU_RESOURCE
) -> dict[str, tuple[str, str]]:
    """GPU UUID -> (namespace, name) of the pod the kubelet gave it to; IDs may be UUIDs or GPU indices."""
    by_index = {str(index): uuid for uuid, index in gpus_by_uuid.items()}
    out: dict[str, tuple[str, str]] = {}
    for pod in pods:
        for device in pod.devices.get(resource, ()):
            uuid = device if device in gpus_by_uuid else by_index.get(device)
            if uuid is not None:
                out[uuid] = (pod.namespace, pod.name)
    return out
