"""Pods of Powertrain's own image run as real processes (powertrain.sandbox.process_runner).

Kubernetes docs followed: "Pod Lifecycle" → "Container restart policy" and "Termination of Pods" (SIGTERM,
the grace period, then SIGKILL); "Expose Pod Information to Containers Through Environment Variables" (downward
API fieldRef, `$(VAR)` expansion); "Configure Liveness, Readiness and Startup Probes"; "Configure Service
Accounts for Pods" (a projected, pod-bound token that identifies the pod's node); "Accessing the Kubernetes API
from a Pod" (KUBERNETES_SERVICE_HOST/PORT).
"""

from __future__ import annotations

import os
import ssl
import sys
import textwrap
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from powertrain.sandbox.cluster import Sandbox, SandboxConfig
from powertrain.sandbox.kubelet import KubeletConfig
from powertrain.sandbox.process_runner import DEFAULT_IMAGE
from powertrain.sandbox.testing import wait_for

IMAGE = f"{DEFAULT_IMAGE}:test"
PODS = "/api/v1/namespaces/default/pods"


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    config = SandboxConfig(nodes=1, kubelet=KubeletConfig(start_delay=0.02, max_grace_seconds=3.0), apply_crds=False)
    with Sandbox(config) as sandbox:
        yield sandbox


def python_pod(name: str, script: str, *, args: list[str] | None = None, **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "main",
        "image": IMAGE,
        "command": [sys.executable, "-c", textwrap.dedent(script)],
        "args": args or [],
    }
    container.update(spec.pop("container", {}))
    return {"metadata": {"name": name}, "spec": {"containers": [container], **spec}}


def pod(sb: Sandbox, name: str) -> dict[str, Any]:
    return sb.api("GET", f"{PODS}/{name}")


def phase(sb: Sandbox, name: str, want: str) -> dict[str, Any] | None:
    p = pod(sb, name)
    return p if p["status"].get("phase") == want else None


def log(sb: Sandbox, name: str, previous: bool = False) -> str:
    """`kubectl logs [--previous]`, over HTTPS with the admin token."""
    ctx = ssl.create_default_context(cadata=sb.ca_pem.decode())
    url = f"{sb.url}{PODS}/{name}/log" + ("?previous=true" if previous else "")
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {sb.token}"})
    with urllib.request.urlopen(req, context=ctx, timeout=10) as rsp:
        return str(rsp.read().decode())


def container_status(p: dict[str, Any]) -> dict[str, Any]:
    status: dict[str, Any] = p["status"]["containerStatuses"][0]
    return status


def test_env_downward_api_and_an_in_cluster_token(sb: Sandbox) -> None:
    script = """
        import json, os, ssl, sys, urllib.request
        sa = os.environ["POWERTRAIN_SANDBOX_SERVICEACCOUNT_DIR"]
        host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
        ctx = ssl.create_default_context(cafile=f"{sa}/ca.crt")
        req = urllib.request.Request(
            f"https://{host}:{port}/apis/authentication.k8s.io/v1/selfsubjectreviews",
            data=b'{"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}', method="POST",
            headers={"Authorization": "Bearer " + open(f"{sa}/token").read(), "Content-Type": "application/json"})
        user = json.load(urllib.request.urlopen(req, context=ctx))["status"]["userInfo"]
        print("user", user["username"], user["extra"]["authentication.kubernetes.io/node-name"][0])
        print("env", os.environ["NODE_NAME"], os.environ["POD_NAME"], os.environ["GREETING"], sys.argv[1])
        print("kubeconfig" if "KUBECONFIG" in os.environ else "no kubeconfig")
    """
    env = [
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "GREETING", "value": "hello-$(POD_NAME)"},
    ]
    sb.api(
        "POST",
        PODS,
        python_pod("envy", script, args=["--on=$(NODE_NAME)"], restartPolicy="Never", container={"env": env}),
    )
    wait_for(lambda: phase(sb, "envy", "Succeeded"), timeout=60, what="envy to succeed")
    text = log(sb, "envy")
    node = sb.node_names[0]
    assert f"user system:serviceaccount:default:default {node}" in text
    assert f"env {node} envy hello-envy --on={node}" in text
    assert "no kubeconfig" in text


def test_exit_codes_and_restart_policies(sb: Sandbox) -> None:
    sb.api("POST", PODS, python_pod("fails", "import sys; sys.exit(3)", restartPolicy="Never"))
    failed = wait_for(lambda: phase(sb, "fails", "Failed"), timeout=60, what="fails to fail")
    assert container_status(failed)["state"]["terminated"]["exitCode"] == 3

    sb.api("POST", PODS, python_pod("loops", "print('run'); raise SystemExit(1)", restartPolicy="Always"))

    def restarted() -> dict[str, Any] | None:
        statuses = pod(sb, "loops")["status"].get("containerStatuses") or [{}]
        return statuses[0] if statuses[0].get("restartCount", 0) >= 1 else None

    status = wait_for(restarted, timeout=60, what="loops to restart")
    assert status["lastState"]["terminated"]["exitCode"] == 1
    assert "run" in log(sb, "loops", previous=True)
    sb.api("DELETE", f"{PODS}/loops")


def test_sigterm_then_the_grace_period_then_sigkill(sb: Sandbox, tmp_path: Path) -> None:
    graceful = f"""
        import os, signal, sys, time
        open({str(tmp_path / "graceful.pid")!r}, "w").write(str(os.getpid()))
        def bye(*_):
            open({str(tmp_path / "graceful.term")!r}, "w").write("term")
            sys.exit(0)
        signal.signal(signal.SIGTERM, bye)
        while True: time.sleep(0.1)
    """
    stubborn = f"""
        import os, signal, time
        open({str(tmp_path / "stubborn.pid")!r}, "w").write(str(os.getpid()))
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True: time.sleep(0.1)
    """
    for name, script in (("graceful", graceful), ("stubborn", stubborn)):
        sb.api("POST", PODS, python_pod(name, script, terminationGracePeriodSeconds=1))
        wait_for(lambda n=name: (tmp_path / f"{n}.pid").exists() or None, timeout=60, what=f"{name} to start")
        sb.api("DELETE", f"{PODS}/{name}")

    def gone(name: str) -> bool | None:
        pid = int((tmp_path / f"{name}.pid").read_text())
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return None

    wait_for(lambda: gone("graceful"), timeout=30, what="graceful to exit")
    assert (tmp_path / "graceful.term").read_text() == "term"
    wait_for(lambda: gone("stubborn"), timeout=30, what="stubborn to be killed after its grace period")
    wait_for(lambda: not [p for p in sb.api("GET", PODS)["items"] if p["metadata"]["name"] in ("graceful", "stubborn")]
             or None, timeout=30, what="the pods to be removed")  # fmt: skip


def test_readiness_and_liveness_probes(sb: Sandbox) -> None:
    server = """
        import http.server, sys, time
        time.sleep(1.5)  # not ready at first
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200 if self.path == "/ok" else 500); self.end_headers()
            def log_message(self, *a): pass
        http.server.HTTPServer(("127.0.0.1", int(sys.argv[1].split("=")[1])), H).serve_forever()
    """
    ready_probe = {"httpGet": {"path": "/ok", "port": "http"}, "periodSeconds": 1}
    container = {"ports": [{"name": "http", "containerPort": 8080}], "readinessProbe": ready_probe}
    sb.api("POST", PODS, python_pod("web", server, args=["--port=8080"], container=container))

    def ready() -> bool:
        conds = pod(sb, "web")["status"].get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

    wait_for(lambda: phase(sb, "web", "Running"), timeout=60, what="web to run")
    assert not ready()
    wait_for(lambda: ready() or None, timeout=30, what="web to be ready")
    runner = sb.runner
    assert runner is not None
    port = runner.port("default", "web", "http")
    assert port is not None
    assert port != 8080
    assert runner.port("default", "web", 8080) == port

    live_probe = {"httpGet": {"path": "/dead", "port": 8080}, "periodSeconds": 1, "failureThreshold": 2}
    sb.api("POST", PODS, python_pod("sick", server, args=["--port=8080"], container={
        "ports": [{"containerPort": 8080}], "livenessProbe": live_probe}))  # fmt: skip

    def restarted() -> bool | None:
        statuses = pod(sb, "sick")["status"].get("containerStatuses") or [{}]
        return statuses[0].get("restartCount", 0) >= 1 or None

    wait_for(restarted, timeout=60, what="the liveness probe to restart sick")
    for name in ("web", "sick"):
        sb.api("DELETE", f"{PODS}/{name}")
