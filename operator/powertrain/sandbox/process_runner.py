"""Containers that really run: a pod whose containers all use Powertrain's own image runs as local processes.

The simulated kubelet hands such pods to this runner (every other image stays simulated). For each container,
as a container runtime and kubelet would [Pods: "Container restart policy"; Configure Liveness, Readiness and
Startup Probes; Downward API; Configure Service Accounts for Pods]:

- the process is the image's entrypoint (`powertrain`, run as this interpreter's `python -m powertrain`) with
  the container's `args`, or its `command` + `args`; `$(VAR)` references are expanded from the container env;
- the environment is the container's `env`: plain values and the downward-API `fieldRef`s (metadata.name,
  metadata.namespace, metadata.uid, metadata.labels['k'], metadata.annotations['k'], spec.nodeName,
  spec.serviceAccountName, status.podIP, status.hostIP), plus KUBERNETES_SERVICE_HOST/PORT pointing at the
  sandbox API server; nothing of the sandbox's own environment leaks in (no KUBECONFIG);
- with automountServiceAccountToken (the default), the kubelet asks the API server for a token bound to the
  pod (TokenRequest, so it carries the pod's node) and writes `token`, `ca.crt` and `namespace` to a
  per-pod directory (the token rewritten at 80 % of its life); the entrypoint (powertrain.sandbox.podshim)
  points the Kubernetes client's in-cluster loader there, because an unprivileged process cannot mount
  /var/run/secrets/kubernetes.io/serviceaccount;
- httpGet and tcpSocket liveness/readiness probes (initialDelaySeconds, periodSeconds, timeoutSeconds,
  failureThreshold, successThreshold) against the container's ports: readiness drives the pod's Ready
  condition, failed liveness restarts the container;
- a container that exits is restarted per restartPolicy (Always; OnFailure on non-zero; Never → the pod
  ends Succeeded/Failed), after a back-off doubling from 1 s to at most 10 s (a real kubelet: 10 s to 5 min);
- deleting the pod sends SIGTERM, waits the grace period (capped by the kubelet's max_grace_seconds), then
  SIGKILL; the exit code goes into the final container status;
- stdout and stderr are the container log (`kubectl logs`, `--previous`, `--tail`).

Pods share this machine's network: each declared containerPort is given a free local port, arguments that
name the port (`--flag=PORT`, or PORT alone) are rewritten to it, and probes use it; `port(namespace, pod,
name_or_number)` tells a test where to connect. Not run for real: exec probes, startup probes, volumes
other than the service-account token (an emptyDir becomes the process's TMPDIR when mounted at /tmp),
security contexts, resource limits, init containers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from powertrain.sandbox.authn import KUBELET_TOKEN_SECONDS
from powertrain.sandbox.restclient import Obj, RestClient, meta_of, spec_of

if TYPE_CHECKING:
    from powertrain.sandbox.kubelet import Kubelet, PodRecord

log = logging.getLogger(__name__)

DEFAULT_IMAGE = "ghcr.io/powertrain-dev/powertrain"
TOKEN_SECONDS = KUBELET_TOKEN_SECONDS  # what the kubelet asks for its projected tokens
_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def image_matches(image: str, repository: str) -> bool:
    """The repository, with any tag or digest."""
    return image == repository or image.startswith((f"{repository}:", f"{repository}@"))


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: known names are replaced, unknown references stay, $$ escapes."""
    out = _VAR.sub(lambda m: env.get(m.group(1), m.group(0)), text.replace("$$(", "\0("))
    return out.replace("\0(", "$(")


def _field_ref(pod: Mapping[str, Any], path: str) -> str:
    meta, spec, status = meta_of(pod), spec_of(pod), pod.get("status") or {}
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    values = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": status.get("podIP"),
        "status.hostIP": status.get("hostIP"),
    }
    return str(values.get(path) or "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class _Container:
    name: str
    spec: Mapping[str, Any]
    ports: dict[str, int] = field(default_factory=dict)  # declared name and number → local port
    proc: asyncio.subprocess.Process | None = None
    log: Path | None = None
    ready: bool = False
    restarts: int = 0


@dataclass
class _Pod:
    uid: str
    namespace: str
    name: str
    workdir: Path
    containers: list[_Container]
    stopping: bool = False


class ProcessRunner:
    def __init__(
        self,
        client: RestClient,
        server_url: str,
        ca_pem: bytes,
        *,
        image: str = DEFAULT_IMAGE,
        workdir: Path | None = None,
    ) -> None:
        self.client = client
        self.server_url = server_url
        self.ca_pem = ca_pem
        self.image = image
        self._own_dir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="powertrain-pods-"))
        self.pods: dict[str, _Pod] = {}
        self._procs: set[asyncio.subprocess.Process] = set()

    # --- what the kubelet and the API server ask -------------------------------------------------------

    def owns(self, pod: Mapping[str, Any]) -> bool:
        containers = spec_of(pod).get("containers") or []
        return bool(containers) and all(image_matches(str(c.get("image") or ""), self.image) for c in containers)

    def port(self, namespace: str, name: str, port: str | int) -> int | None:
        for p in self.pods.values():
            if p.namespace == namespace and p.name == name:
                for c in p.containers:
                    if str(port) in c.ports:
                        return c.ports[str(port)]
        return None

    def logs(self, namespace: str, name: str, container: str | None, previous: bool = False) -> str | None:
        """A real pod's container log; None when the pod is not one of ours (the kubelet simulates it)."""
        for p in self.pods.values():
            if p.namespace == namespace and p.name == name:
                c = next((c for c in p.containers if container in (None, c.name)), None)
                if c is None or c.log is None:
                    return ""
                path = c.log.with_suffix(".previous") if previous else c.log
                try:
                    return path.read_text(errors="replace")
                except OSError:
                    return ""
        return None

    # --- running -------------------------------------------------------------------------------------------

    async def run(self, kubelet: Kubelet, rec: PodRecord) -> None:
        """The pod's life from container start to its end (or until the kubelet cancels it for deletion)."""
        from powertrain.sandbox.kubelet import Stage, rfc3339

        pod = kubelet._pod(rec)
        if pod is None:
            return
        state = self.pods.get(rec.uid)
        if state is None:
            workdir = self.workdir / f"{rec.namespace}_{rec.name}_{rec.uid[:8]}"
            workdir.mkdir(parents=True, exist_ok=True)
            containers = [_Container(str(c.get("name")), c) for c in spec_of(pod).get("containers") or []]
            state = _Pod(rec.uid, rec.namespace, rec.name, workdir, containers)
            self.pods[rec.uid] = state
            for c in containers:
                for port in c.spec.get("ports") or []:
                    local = free_port()
                    c.ports[str(port.get("containerPort"))] = local
                    if port.get("name"):
                        c.ports[str(port["name"])] = local
        if not rec.ip:
            rec.ip = kubelet._pod_ip(rec.node)
        policy = str(spec_of(pod).get("restartPolicy") or "Always")
        container = state.containers[0]  # one container per Powertrain pod; others share its fate
        backoff = 1.0
        while not state.stopping:
            pod = kubelet._pod(rec) or pod
            started = rfc3339()
            await self._start(state, pod)
            rec.stage = Stage.RUNNING
            rec.run_started = time.monotonic()
            running = {"running": {"startedAt": started}}
            has_readiness = any("readinessProbe" in c.spec for c in state.containers)
            for c in state.containers:
                c.ready = not has_readiness
            await self._report(kubelet, rec, pod, running)
            probes = asyncio.create_task(self._probe(kubelet, rec, state, pod, running))
            refresh = asyncio.create_task(self._refresh_token(state, pod))
            try:
                code = await self._wait(container)
            finally:
                for task in (probes, refresh):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if state.stopping:
                return
            for c in state.containers:
                if c is not container:
                    await self._kill(c, 0)
            finished = rfc3339()
            terminated = {
                "terminated": {
                    "exitCode": code,
                    "reason": "Completed" if code == 0 else "Error",
                    "startedAt": started,
                    "finishedAt": finished,
                }
            }
            if policy == "Never" or (policy == "OnFailure" and code == 0):
                rec.stage = Stage.DONE
                phase = "Succeeded" if code == 0 else "Failed"
                await kubelet._patch_status(rec, kubelet._status(rec, pod, phase, terminated, ready=False))
                return
            rec.restarts += 1
            rec.last_state = terminated
            for c in state.containers:  # what `kubectl logs --previous` shows from now on
                if c.log is not None and c.log.exists():
                    c.log.replace(c.log.with_suffix(".previous"))
            waiting = {"waiting": {"reason": "CrashLoopBackOff", "message": f"back-off {backoff:.0f}s restarting"}}
            await kubelet._patch_status(
                rec, kubelet._status(rec, pod, "Running", waiting, ready=False, last=terminated)
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    async def _report(self, kubelet: Kubelet, rec: PodRecord, pod: Obj, state: Obj) -> None:
        ready = all(c.ready for c in self.pods[rec.uid].containers)
        await kubelet._patch_status(rec, kubelet._status(rec, pod, "Running", state, ready=ready, last=rec.last_state))

    async def _start(self, state: _Pod, pod: Obj) -> None:
        env = await self._environment(state, pod)
        for c in state.containers:
            cenv = dict(env)
            for e in c.spec.get("env") or []:
                name = str(e.get("name"))
                if "value" in e:
                    cenv[name] = expand(str(e.get("value") or ""), cenv)
                elif (e.get("valueFrom") or {}).get("fieldRef"):
                    cenv[name] = _field_ref(pod, str(e["valueFrom"]["fieldRef"].get("fieldPath")))
            command = [expand(str(a), cenv) for a in c.spec.get("command") or []]
            args = [expand(str(a), cenv) for a in c.spec.get("args") or []]
            args = [self._rewrite_port(a, c) for a in args]
            argv = command + args if command else ["powertrain", *args]
            if argv[0] == "powertrain":
                argv = [sys.executable, "-m", "powertrain.sandbox.podshim", *argv[1:]]
            c.log = state.workdir / f"{c.name}.log"
            with c.log.open("wb") as out:
                spawn = asyncio.ensure_future(
                    asyncio.create_subprocess_exec(
                        *argv,
                        env=cenv,
                        stdout=out,
                        stderr=asyncio.subprocess.STDOUT,
                        stdin=asyncio.subprocess.DEVNULL,
                        cwd=state.workdir,
                        start_new_session=True,
                    )
                )
                # Recorded even when this task is cancelled mid-spawn, so close() can still stop the process.
                spawn.add_done_callback(self._spawned)
                c.proc = await asyncio.shield(spawn)

    @staticmethod
    def _rewrite_port(arg: str, c: _Container) -> str:
        for number, local in c.ports.items():
            if not number.isdigit():
                continue
            if arg == number:
                return str(local)
            if arg.endswith(f"={number}"):
                return f"{arg[: -len(number)]}{local}"
        return arg

    async def _environment(self, state: _Pod, pod: Obj) -> dict[str, str]:
        host, _, port = self.server_url.removeprefix("https://").removeprefix("http://").rpartition(":")
        tmp = state.workdir / "tmp"
        tmp.mkdir(exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp),
            "TMPDIR": str(tmp),
            "HOSTNAME": str(meta_of(pod).get("name")),
            "PYTHONUNBUFFERED": "1",
            "KUBERNETES_SERVICE_HOST": host,
            "KUBERNETES_SERVICE_PORT": port,
            "KUBERNETES_SERVICE_PORT_HTTPS": port,
        }
        spec = spec_of(pod)
        if spec.get("automountServiceAccountToken", True) is not False:
            sa_dir = state.workdir / "serviceaccount"
            sa_dir.mkdir(exist_ok=True)
            token = await self._token(pod)
            (sa_dir / "token.new").write_text(token)
            (sa_dir / "token.new").replace(sa_dir / "token")
            (sa_dir / "ca.crt").write_bytes(self.ca_pem)
            (sa_dir / "namespace").write_text(str(meta_of(pod).get("namespace")))
            env["POWERTRAIN_SANDBOX_SERVICEACCOUNT_DIR"] = str(sa_dir)
        return env

    async def _refresh_token(self, state: _Pod, pod: Obj) -> None:
        """Rewrite the token at 80 % of its life, as the kubelet rotates projected tokens (clients reread it)."""
        token_file = state.workdir / "serviceaccount" / "token"
        while token_file.exists():
            await asyncio.sleep(TOKEN_SECONDS * 0.8)
            try:
                fresh = await self._token(pod)
            except Exception as exc:  # the pod may be going; the old token stays until it expires
                log.info("token refresh for %s/%s failed: %s", state.namespace, state.name, exc)
                continue
            partial = token_file.with_suffix(".new")
            partial.write_text(fresh)
            partial.replace(token_file)  # atomically: a reader never sees half a token

    async def _token(self, pod: Obj) -> str:
        meta = meta_of(pod)
        sa = spec_of(pod).get("serviceAccountName") or "default"
        path = f"/api/v1/namespaces/{meta['namespace']}/serviceaccounts/{sa}/token"
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": TOKEN_SECONDS,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]},
            },
        }
        answer = await self.client.request("POST", path, body)
        return str(answer["status"]["token"])

    async def _wait(self, c: _Container) -> int:
        assert c.proc is not None
        code = await c.proc.wait()
        return code if code >= 0 else 128 - code  # killed by signal N: 128+N, as a container runtime reports

    async def _probe(self, kubelet: Kubelet, rec: PodRecord, state: _Pod, pod: Obj, running: Obj) -> None:
        tasks = []
        for c in state.containers:
            for kind in ("readinessProbe", "livenessProbe"):
                if kind in c.spec:
                    tasks.append(asyncio.create_task(self._probe_loop(kubelet, rec, c, kind, pod, running)))
        try:
            if tasks:
                await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()

    async def _probe_loop(
        self, kubelet: Kubelet, rec: PodRecord, c: _Container, kind: str, pod: Obj, running: Obj
    ) -> None:
        spec = c.spec[kind] or {}
        period = float(spec.get("periodSeconds", 10))
        threshold = int(spec.get("failureThreshold", 3))
        successes_needed = int(spec.get("successThreshold", 1))
        await asyncio.sleep(float(spec.get("initialDelaySeconds", 0)))
        failures = successes = 0
        fast = kind == "readinessProbe"
        while c.proc is not None and c.proc.returncode is None:
            ok = await self._check(spec, c)
            failures, successes = (0, successes + 1) if ok else (failures + 1, 0)
            if kind == "readinessProbe":
                ready = c.ready
                if ok and successes >= successes_needed:
                    ready = True
                elif not ok and failures >= threshold:
                    ready = False
                if ready != c.ready:
                    c.ready = ready
                    await self._report(kubelet, rec, pod, running)
            elif failures >= threshold:
                log.info(
                    "pod %s/%s container %s failed its liveness probe; restarting", rec.namespace, rec.name, c.name
                )
                await self._kill(c, int(spec_of(pod).get("terminationGracePeriodSeconds", 30)))
                return
            # Until the first success, readiness is checked every second: the pod need not wait a full
            # period to become Ready (the kubelet also probes at start and after each state change).
            await asyncio.sleep(min(period, 1.0) if fast and not c.ready else period)

    async def _check(self, spec: Mapping[str, Any], c: _Container) -> bool:
        timeout = float(spec.get("timeoutSeconds", 1))
        if "httpGet" in spec:
            get = spec["httpGet"]
            port = c.ports.get(str(get.get("port")))
            if port is None:
                return False
            url = f"http://127.0.0.1:{port}{get.get('path') or '/'}"
            try:
                async with (
                    aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
                    session.get(url) as rsp,
                ):
                    return 200 <= rsp.status < 400
            except (aiohttp.ClientError, OSError, TimeoutError):
                return False
        if "tcpSocket" in spec:
            port = c.ports.get(str(spec["tcpSocket"].get("port")))
            if port is None:
                return False
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
                writer.close()
                return True
            except (OSError, TimeoutError):
                return False
        return True  # exec and gRPC probes are not run: they count as passing

    def _spawned(self, fut: asyncio.Future[asyncio.subprocess.Process]) -> None:
        if not fut.cancelled() and fut.exception() is None:
            self._procs = {p for p in self._procs if p.returncode is None}
            self._procs.add(fut.result())

    # --- stopping ------------------------------------------------------------------------------------------

    def has(self, uid: str) -> bool:
        return uid in self.pods

    async def stop(self, uid: str, grace: float) -> int:
        """SIGTERM every container of the pod, SIGKILL after `grace` seconds; the first container's exit code."""
        state = self.pods.get(uid)
        if state is None:
            return 143
        state.stopping = True
        codes = await asyncio.gather(*(self._kill(c, grace) for c in state.containers))
        self.forget(uid)
        return codes[0] if codes else 143

    async def _kill(self, c: _Container, grace: float) -> int:
        proc = c.proc
        if proc is None:
            return 143
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        code = proc.returncode or 0
        return code if code >= 0 else 128 - code

    def forget(self, uid: str) -> None:
        """The pod is gone: kill whatever still runs, keep nothing."""
        state = self.pods.pop(uid, None)
        if state is None:
            return
        state.stopping = True
        for c in state.containers:
            if c.proc is not None and c.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(c.proc.pid, signal.SIGKILL)

    async def close(self, grace: float = 5.0) -> None:
        await asyncio.gather(*(self.stop(uid, grace) for uid in list(self.pods)), return_exceptions=True)
        for proc in self._procs:  # any the pods no longer name (a restart cancelled mid-spawn)
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)
