"""The kubelet's pod-resources gRPC API for the sandbox's simulated nodes: one unix socket per node.

A real kubelet serves `v1.PodResourcesLister` (k8s.io/kubelet/pkg/apis/podresources/v1/api.proto) on
/var/lib/kubelet/pod-resources/kubelet.sock; node agents (dcgm-exporter, Powertrain's agent) ask it which
devices each pod holds. Here every node gets a socket `<directory>/<node>.sock` that answers `List` from the
simulated kubelet's own device allocation (GPU indices, lowest free first, given at admission), so a sim agent
started with `--pod-resources-socket <directory>/<node>.sock` attributes GPUs exactly as on a real node.

The answer is encoded here from the .proto's field numbers with a small writer of its own (the agent decodes
with its own reader: two implementations that check each other in the tests). Only `List` is served;
`GetAllocatableResources` and `Get` answer UNIMPLEMENTED, as a kubelet with those feature gates off does.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from powertrain.api.constants import GPU_RESOURCE

log = logging.getLogger(__name__)

SERVICE = "v1.PodResourcesLister"
CONTAINER_NAME = "main"

PodDevices = tuple[str, str, tuple[str, ...]]
"""(namespace, name, GPU device IDs) of one pod."""


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2): strings and embedded messages."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def encode_list_response(pods: Iterable[PodDevices]) -> bytes:
    """ListPodResourcesResponse{pod_resources=1: PodResources{name=1, namespace=2, containers=3:
    ContainerResources{name=1, devices=2: ContainerDevices{resource_name=1, device_ids=2}}}}."""
    out = bytearray()
    for namespace, name, devices in pods:
        container = _field(1, CONTAINER_NAME.encode())
        if devices:
            entry = _field(1, GPU_RESOURCE.encode()) + b"".join(_field(2, d.encode()) for d in devices)
            container += _field(2, entry)
        pod = _field(1, name.encode()) + _field(2, namespace.encode()) + _field(3, container)
        out += _field(1, pod)
    return bytes(out)


class PodResourcesServers:
    """One grpc.aio server per node, on the sandbox's event loop; `lister(node)` gives the node's pods."""

    def __init__(self, directory: Path, lister: Callable[[str], list[PodDevices]]) -> None:
        self.directory = directory
        self.lister = lister
        self._servers: dict[str, Any] = {}

    def socket(self, node: str) -> Path:
        return self.directory / f"{node}.sock"

    async def start(self, nodes: Iterable[str]) -> None:
        import grpc

        self.directory.mkdir(parents=True, exist_ok=True)
        for node in nodes:
            path = self.socket(node)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

            # On the sandbox's loop (not grpc's thread pool): the kubelet's records are read without locks.
            async def list_pods(_request: bytes, _context: Any, node: str = node) -> bytes:
                return encode_list_response(self.lister(node))

            handler = grpc.method_handlers_generic_handler(
                SERVICE,
                {
                    "List": grpc.unary_unary_rpc_method_handler(
                        list_pods, request_deserializer=bytes, response_serializer=bytes
                    )
                },
            )
            server = grpc.aio.server(handlers=[handler])
            server.add_insecure_port(f"unix://{path.absolute()}")
            await server.start()
            self._servers[node] = server

    async def stop(self) -> None:
        for node, server in list(self._servers.items()):
            await server.stop(grace=None)
            with contextlib.suppress(FileNotFoundError):
                self.socket(node).unlink()
        self._servers.clear()
