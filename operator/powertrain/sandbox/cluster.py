"""The whole sandbox cluster in one object: API server, CRDs, nodes, simulated kubelet, default scheduler.

`Sandbox` runs everything on its own event loop in a background thread, so synchronous code (tests, the CLI,
kubectl in a subprocess, the kubernetes client) can use it without an event loop of its own:

    with Sandbox(SandboxConfig(nodes=4, gpus_per_node=8)) as sb:
        subprocess.run(["kubectl", "--kubeconfig", sb.kubeconfig_path, "get", "nodes"])

Workload controllers (Deployments, ReplicaSets, DaemonSets, StatefulSets, Jobs) run in powertrain.sandbox.workloads;
pods of Powertrain's own image (`real_image`) run as real local processes with their service-account tokens,
probes and logs (powertrain.sandbox.process_runner); every other pod is simulated by the kubelet.

Left out on purpose (a real cluster has them; nothing here needs them): node heartbeats and node Leases
(nodes stay Ready until a fault says otherwise), exec/attach/port-forward, images, volumes, enforcement of
limits, probes and logs of simulated pods, crash-loop back-off of simulated pods, and preemption in the default
scheduler.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import yaml

from powertrain.api import crdgen
from powertrain.sandbox import ops
from powertrain.sandbox.apiserver import ApiServer
from powertrain.sandbox.kubeconfig import write_kubeconfig
from powertrain.sandbox.kubelet import Kubelet, KubeletConfig, rfc3339
from powertrain.sandbox.nodes import (
    DEFAULT_GPU_MODEL,
    NodeSpec,
    load_node_file,
    node_object,
    parse_topology,
    uniform_nodes,
)
from powertrain.sandbox.podresources import PodResourcesServers
from powertrain.sandbox.process_runner import DEFAULT_IMAGE, ProcessRunner
from powertrain.sandbox.restclient import Informer, Obj, RestClient, RestError, api_path
from powertrain.sandbox.scheduler import DefaultScheduler
from powertrain.sandbox.workloads import Workloads

T = TypeVar("T")

CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


@dataclass(frozen=True)
class SandboxConfig:
    """What the sandbox runs. Nodes come from `node_specs`, else `cluster_file`, else the uniform flags."""

    nodes: int = 4
    gpus_per_node: int = 8
    gpu_model: str = DEFAULT_GPU_MODEL
    topology: str = ""
    cluster_file: Path | None = None
    node_specs: Sequence[NodeSpec] | None = None
    host: str = "127.0.0.1"
    port: int = 0
    token: str | None = None
    kubelet: KubeletConfig = field(default_factory=KubeletConfig)
    run_kubelet: bool = True
    run_scheduler: bool = True
    run_controllers: bool = True  # Deployments, ReplicaSets, DaemonSets, StatefulSets, Jobs (sandbox.workloads)
    # Pods whose containers all use this image repository run as real local processes (sandbox.process_runner);
    # empty: every pod is simulated.
    real_image: str = DEFAULT_IMAGE
    apply_crds: bool = True
    kubeconfig_path: Path | None = None
    node_create_concurrency: int = 32
    pod_resources: bool = False
    """Serve the kubelet's pod-resources gRPC API per node (a unix socket each; see `pod_resources_socket`)."""

    def node_list(self) -> list[NodeSpec]:
        """The nodes to create; NodeConfigError explains a bad flag or file."""
        if self.node_specs is not None:
            return list(self.node_specs)
        if self.cluster_file is not None:
            return load_node_file(Path(self.cluster_file))
        return uniform_nodes(self.nodes, self.gpus_per_node, self.gpu_model, parse_topology(self.topology))


@dataclass
class StartupTimings:
    """Seconds spent in each start-up step (for `sandbox up` output and the benchmark)."""

    api_server: float = 0.0
    crds: float = 0.0
    nodes: float = 0.0
    controllers: float = 0.0
    node_count: int = 0

    @property
    def total(self) -> float:
        return self.api_server + self.crds + self.nodes + self.controllers


class SandboxError(RuntimeError):
    """The sandbox could not start (or a call into it failed)."""


class Sandbox:
    """Start with `start()` or a `with` block; `stop()` tears everything down and removes temporary files."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.token = self.config.token or secrets.token_urlsafe(24)
        self.timings = StartupTimings()
        self.server: ApiServer | None = None
        self.client: RestClient | None = None
        self.kubelet: Kubelet | None = None
        self.scheduler: DefaultScheduler | None = None
        self.workloads: Workloads | None = None
        self.runner: ProcessRunner | None = None
        self._specs = self.config.node_list()
        self._crds: list[Obj] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._nodes: Informer | None = None
        self._tmpdir: Path | None = None
        self._kubeconfig: Path | None = None
        self.pod_resources: PodResourcesServers | None = None

    # --- lifecycle -----------------------------------------------------------------------------------------

    def start(self, timeout: float = 300.0) -> Sandbox:
        if self._thread is not None:
            raise SandboxError("the sandbox is already started")
        self._crds = crd_manifests() if self.config.apply_crds else []
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="powertrain-sandbox", daemon=True)
        self._thread.start()
        try:
            self._submit(self._astart()).result(timeout)
        except BaseException:
            self.stop()
            raise
        path = self.config.kubeconfig_path
        if path is None:
            self._tmpdir = Path(tempfile.mkdtemp(prefix="powertrain-sandbox-"))
            path = self._tmpdir / "kubeconfig"
        self._kubeconfig = self.write_kubeconfig(path)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(Exception):
            self._submit(self._astop()).result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if not thread.is_alive():
            loop.close()
        self._loop = self._thread = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # --- what users need -------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self.server is None:
            raise SandboxError("the sandbox is not started")
        return self.server.url

    @property
    def kubeconfig_path(self) -> Path:
        if self._kubeconfig is None:
            raise SandboxError("the sandbox is not started")
        return self._kubeconfig

    def pod_resources_socket(self, node: str) -> Path:
        """The node's kubelet pod-resources socket (SandboxConfig.pod_resources), for a sim agent's flag."""
        if self.pod_resources is None:
            raise SandboxError("the sandbox serves no pod-resources API (SandboxConfig.pod_resources is off)")
        return self.pod_resources.socket(node)

    def write_kubeconfig(self, path: Path | str) -> Path:
        return write_kubeconfig(Path(path), self.url, self.token, ca_pem=self.ca_pem)

    @property
    def ca_pem(self) -> bytes:
        """The API server's certificate (PEM), to verify its https URL; empty when it serves plain http."""
        if self.server is None:
            raise SandboxError("the sandbox is not started")
        return self.server.ca_pem

    @property
    def node_names(self) -> list[str]:
        return [spec.name for spec in self._specs]

    def call(self, fn: Callable[[RestClient], Awaitable[T]], timeout: float = 60.0) -> T:
        """Run `fn(client)` on the sandbox's loop and return its result (for tests and the CLI)."""

        async def run() -> T:
            if self.client is None:
                raise SandboxError("the sandbox is not started")
            return await fn(self.client)

        return self._submit(run()).result(timeout)

    def api(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Obj:
        """One API request as the sandbox's own client (RestError on a non-2xx answer)."""
        return self.call(lambda c: c.request(method, path, body, content_type=content_type))

    # Node faults return once the sandbox's kubelet and scheduler have seen the change, so what a test does
    # next (create a pod, say) is judged against the new node state, as it would be after a real fault settled.

    def set_node_ready(self, name: str, status: ops.ReadyStatus = "False") -> None:
        self.call(lambda c: self._seen(ops.set_node_ready(c, name, status)))

    def cordon(self, name: str) -> None:
        self.call(lambda c: self._seen(ops.cordon(c, name)))

    def uncordon(self, name: str) -> None:
        self.call(lambda c: self._seen(ops.uncordon(c, name)))

    def remove_node(self, name: str) -> None:
        async def remove(c: RestClient) -> None:
            await ops.remove_node(c, name)
            await self._wait_cache(lambda cache: name not in cache)

        self.call(remove)

    async def _seen(self, write: Awaitable[Obj]) -> None:
        node = await write
        name = node["metadata"]["name"]
        version = node["metadata"].get("resourceVersion")
        await self._wait_cache(
            lambda cache: name in cache and cache[name]["metadata"].get("resourceVersion") == version
        )

    async def _wait_cache(self, done: Callable[[dict[str, Obj]], bool]) -> None:
        if self._nodes is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                await self._nodes.until(done)

    # --- on the sandbox loop -----------------------------------------------------------------------------

    def _submit(self, coro: Awaitable[T]) -> Future[T]:
        if self._loop is None:
            raise SandboxError("the sandbox is not started")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]

    async def _astart(self) -> None:
        began = time.perf_counter()
        self.server = ApiServer(token=self.token)
        await self.server.start(self.config.host, self.config.port)
        self.client = RestClient(self.server.url, self.token, ca_pem=self.server.ca_pem or None)
        self.client.open()
        self.timings.api_server = time.perf_counter() - began

        began = time.perf_counter()
        if self._crds:
            await apply_crds(self.client, self._crds)
        self.timings.crds = time.perf_counter() - began

        began = time.perf_counter()
        await create_nodes(self.client, self._specs, self.config.node_create_concurrency)
        self.timings.nodes = time.perf_counter() - began
        self.timings.node_count = len(self._specs)

        began = time.perf_counter()
        pods = Informer(self.client, api_path("pods"))
        nodes = Informer(self.client, api_path("nodes"))
        self._nodes = nodes if (self.config.run_kubelet or self.config.run_scheduler) else None
        if self.config.run_kubelet:
            self.kubelet = Kubelet(self.client, pods, nodes, self.config.kubelet)
            if self.config.real_image:
                self.runner = ProcessRunner(
                    self.client, self.server.url, self.server.ca_pem, image=self.config.real_image
                )
                self.kubelet.runner = self.runner
                self.server.pod_logs = self.runner.logs
        if self.config.run_scheduler:
            self.scheduler = DefaultScheduler(self.client, pods, nodes)
            self._tasks.append(asyncio.create_task(self.scheduler.run()))
        if self.config.run_controllers:
            self.workloads = Workloads(self.client, pods, nodes)
            self._tasks.append(asyncio.create_task(self.workloads.run()))
        if self.kubelet is not None or self.scheduler is not None or self.workloads is not None:
            self._tasks += [asyncio.create_task(pods.run()), asyncio.create_task(nodes.run())]
            await asyncio.wait_for(asyncio.gather(pods.synced.wait(), nodes.synced.wait()), 60)
        if self.config.pod_resources and self.kubelet is not None:
            # Unix socket paths are limited to 107 bytes: a short directory of its own, not the state dir.
            directory = Path(tempfile.mkdtemp(prefix="pt-podres-"))
            self.pod_resources = PodResourcesServers(directory, self.kubelet.pod_resources)
            await self.pod_resources.start(spec.name for spec in self._specs)
        self.timings.controllers = time.perf_counter() - began

    async def _astop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self.pod_resources is not None:
            await self.pod_resources.stop()
            shutil.rmtree(self.pod_resources.directory, ignore_errors=True)
        if self.kubelet is not None:
            await self.kubelet.stop()
        if self.client is not None:
            await self.client.close()
        if self.server is not None:
            await self.server.stop()


def crd_manifests() -> list[Obj]:
    """Powertrain's CRDs, generated from the API models exactly as `crds/` is (CPU work: keep it off the loop)."""
    return [yaml.safe_load(text) for text in crdgen.render_all().values()]


async def apply_crds(client: RestClient, manifests: Sequence[Obj]) -> list[str]:
    """Create (or update) the given CRDs."""
    names = []
    for crd in manifests:
        name = crd["metadata"]["name"]
        try:
            await client.create(CRD_PATH, crd)
        except RestError as exc:
            if exc.code != 409:
                raise SandboxError(f"CRD {name} was refused: {exc}") from None
            current = await client.get(f"{CRD_PATH}/{name}")
            crd["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            await client.replace(f"{CRD_PATH}/{name}", crd)
        names.append(name)
    return names


async def create_nodes(client: RestClient, specs: Sequence[NodeSpec], concurrency: int = 32) -> None:
    """Create the Node objects, `concurrency` requests at a time; their status is written with them."""
    gate = asyncio.Semaphore(max(concurrency, 1))
    now = rfc3339()

    async def one(index: int, spec: NodeSpec) -> None:
        node = node_object(spec, index, now)
        async with gate:
            created = await client.create(api_path("nodes"), node)
            if not (created.get("status") or {}).get("conditions"):
                # An API server that drops status on create (nodes may set it, but not every server lets them).
                node["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
                await client.replace(api_path("nodes", name=spec.name, sub="status"), node)

    await asyncio.gather(*(one(i, spec) for i, spec in enumerate(specs)))
