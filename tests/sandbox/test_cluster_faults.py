"""The sandbox's kubelet and scheduler ride out the API faults the sandbox injects, as real ones retry."""

from __future__ import annotations

from typing import Any

from powertrain.sandbox.cluster import Sandbox, SandboxConfig
from powertrain.sandbox.kubelet import RUN_SECONDS_ANNOTATION, KubeletConfig
from powertrain.sandbox.restclient import RestError, api_path
from powertrain.sandbox.testing import wait_for

CONFIG = SandboxConfig(nodes=2, gpus_per_node=8, kubelet=KubeletConfig(start_delay=0.02, max_grace_seconds=0.1))


def job_pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": {RUN_SECONDS_ANNOTATION: "0.2"}},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox", "resources": {"limits": {"nvidia.com/gpu": "2"}}}],
        },
    }


def phases(sb: Sandbox) -> dict[str, str]:
    items = sb.api("GET", api_path("pods", "default"))["items"]
    return {p["metadata"]["name"]: p.get("status", {}).get("phase", "") for p in items}


def test_pods_complete_and_go_despite_injected_errors_and_dropped_watches() -> None:
    with Sandbox(CONFIG) as sb:
        faults = {
            "errorRate": 0.3,
            "codes": [500, 503, 429, 409],
            "retryAfterSeconds": 0,
            "verbs": ["create", "patch", "delete"],
            "resources": ["pods"],
            "seed": 3,
        }
        sb.api("POST", "/sandbox/v1/faults", faults)
        names = [f"job-{i}" for i in range(12)]  # 24 GPUs asked of 16: some wait for others to finish
        for name in names:
            body = job_pod(name)
            # Injected 409s come before the server acts, so retrying a create is safe here (not in general).
            sb.call(lambda c, body=body: c.request("POST", api_path("pods", "default"), body, retry_conflicts=True))
        sb.api("POST", "/sandbox/v1/faults/drop-watches", {})
        wait_for(
            lambda: all(phase == "Succeeded" for phase in phases(sb).values()) and len(phases(sb)) == 12,
            timeout=60,
            what="every pod to succeed",
        )
        injected = sb.api("GET", "/sandbox/v1/faults")["injected"]
        assert injected > 0
        for name in names:
            path = api_path("pods", "default", name)
            try:
                sb.call(lambda c, path=path: c.request("DELETE", path, retry_conflicts=True))
            except RestError as exc:
                assert exc.code == 404  # a retried DELETE whose first attempt went through
        wait_for(lambda: not phases(sb), timeout=60, what="every pod to be removed")
