"""The real kubectl (v1.32) against the sandbox: apply (client- and server-side), get (Tables), get -w, describe,
wait --for=jsonpath, scale, delete.

Follows the kubectl reference pages of each command and, server-side, "API Concepts" → "Receiving resources as
Tables", "Server-Side Apply", "Efficient detection of changes" (watch) and the scale subresource.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time

from kubernetes import client as k8s

from powertrain.sandbox.testing import wait_for

POD = """
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: {ns}
  labels: {{app: web}}
spec:
  containers:
  - name: c
    image: nginx:1.25
    env: [{{name: A, value: "1"}}]
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: conf, namespace: {ns}}}
data: {{a: "1"}}
"""

TJ = """
apiVersion: powertrain.dev/v1alpha1
kind: TrainingJob
metadata: {{name: job, namespace: {ns}}}
spec:
  replicas: {replicas}
  template: {{spec: {{containers: [{{name: t, image: "img:1"}}]}}}}
"""


def test_apply_twice_then_describe_and_delete(kubectl, api: k8s.ApiClient, ns: str) -> None:  # type: ignore[no-untyped-def]
    out = kubectl("apply", "-f", "-", input=POD.format(ns=ns)).stdout
    assert "pod/web created" in out
    assert "configmap/conf created" in out
    changed = POD.format(ns=ns).replace('a: "1"', 'a: "2"').replace("app: web", "app: web, tier: front")
    out = kubectl("apply", "-f", "-", input=changed).stdout
    assert "configmap/conf configured" in out
    core = k8s.CoreV1Api(api)
    assert core.read_namespaced_config_map("conf", ns).data == {"a": "2"}
    assert core.read_namespaced_pod("web", ns).metadata.labels == {"app": "web", "tier": "front"}
    rows = kubectl("-n", ns, "get", "pods", "-o", "wide").stdout.splitlines()
    assert rows[0].split()[:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert rows[1].split()[:3] == ["web", "0/1", "Pending"]
    described = kubectl("-n", ns, "describe", "pod", "web").stdout
    assert "nginx:1.25" in described
    assert "BestEffort" in described
    kubectl("-n", ns, "delete", "-f", "-", input=changed)  # waits for both to be gone
    assert core.list_namespaced_pod(ns).items == []


def test_server_side_apply_creates_and_updates(kubectl, api: k8s.ApiClient, ns: str, crds: None) -> None:  # type: ignore[no-untyped-def]
    assert (
        "serverside-applied" in kubectl("apply", "--server-side", "-f", "-", input=TJ.format(ns=ns, replicas=2)).stdout
    )
    kubectl("apply", "--server-side", "-f", "-", input=TJ.format(ns=ns, replicas=3))
    tj = k8s.CustomObjectsApi(api).get_namespaced_custom_object("powertrain.dev", "v1alpha1", ns, "trainingjobs", "job")
    assert tj["spec"]["replicas"] == 3
    assert tj["spec"]["topology"] == {"level": "rack", "mode": "Preferred"}  # defaults still applied


def test_scale_wait_and_watch(kubectl, ns: str, crds: None) -> None:  # type: ignore[no-untyped-def]
    kubectl("apply", "-f", "-", input=TJ.format(ns=ns, replicas=2))
    watcher = subprocess.Popen(
        [*kubectl.argv(), "-n", ns, "get", "tj", "-w", "--request-timeout=0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=kubectl.env,
    )
    lines: list[list[str]] = []
    reader = threading.Thread(target=lambda: lines.extend(line.split() for line in watcher.stdout), daemon=True)
    reader.start()
    try:
        wait_for(lambda: len(lines) >= 2, timeout=20, what="kubectl get -w to print the current state")
        assert lines[0][:3] == ["NAME", "PHASE", "REPLICAS"]
        assert lines[1][0] == "job"
        assert "trainingjob.powertrain.dev/job scaled" in kubectl("-n", ns, "scale", "tj/job", "--replicas=4").stdout
        kubectl("-n", ns, "wait", "--for=jsonpath={.spec.replicas}=4", "tj/job", "--timeout=20s")
        kubectl(
            "-n",
            ns,
            "patch",
            "tj",
            "job",
            "--subresource=status",
            "--type=merge",
            "-p",
            '{"status":{"phase":"Running"}}',
        )
        kubectl("-n", ns, "wait", "--for=jsonpath={.status.phase}=Running", "tj/job", "--timeout=20s")
        wait_for(
            lambda: any(r[:3] == ["job", "Running", "4"] for r in lines),
            timeout=20,
            what="the watch to show the scaled, running job",
        )
    finally:
        watcher.terminate()
        watcher.communicate(timeout=10)
    got = json.loads(kubectl("-n", ns, "get", "tj", "job", "-o", "json").stdout)
    assert got["metadata"]["generation"] == 2


def test_logs_show_what_the_simulated_kubelet_wrote(kubectl, ns: str) -> None:  # type: ignore[no-untyped-def]
    kubectl("-n", ns, "run", "x", "--image=busybox:1.36", "--annotations=sandbox.powertrain.dev/log=step 1 loss 2.5")
    assert kubectl("-n", ns, "logs", "x").stdout == "step 1 loss 2.5"
    wrong = kubectl("-n", ns, "logs", "x", "-c", "nope", check=False)
    assert wrong.returncode != 0
    assert "container nope is not valid" in wrong.stderr


def test_kubectl_create_sends_protobuf_for_core_kinds(kubectl, api: k8s.ApiClient) -> None:  # type: ignore[no-untyped-def]
    ns = f"pb-{time.monotonic_ns() % 10**8}"
    kubectl("create", "namespace", ns)
    kubectl("-n", ns, "create", "configmap", "c", "--from-literal=a=1", "--from-literal=b=two")
    kubectl("-n", ns, "create", "secret", "generic", "s", "--from-literal=token=abc")
    kubectl("-n", ns, "create", "serviceaccount", "robot")
    core = k8s.CoreV1Api(api)
    assert core.read_namespace(ns).status.phase == "Active"
    assert core.read_namespaced_config_map("c", ns).data == {"a": "1", "b": "two"}
    secret = core.read_namespaced_secret("s", ns)
    assert secret.data == {"token": "YWJj"}
    assert secret.type == "Opaque"
    assert core.read_namespaced_service_account("robot", ns).metadata.name == "robot"


def test_get_events_prints_like_kubectl_does(kubectl, api: k8s.ApiClient, ns: str) -> None:  # type: ignore[no-untyped-def]
    k8s.CoreV1Api(api).create_namespaced_event(
        ns,
        {
            "metadata": {"name": "ev1"},
            "involvedObject": {"kind": "Pod", "name": "w", "namespace": ns},
            "reason": "Testing",
            "message": "hello there",
            "type": "Normal",
        },
    )
    header, row = kubectl("-n", ns, "get", "events").stdout.splitlines()
    assert header.split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert row.split()[1:] == ["Normal", "Testing", "pod/w", "hello", "there"]


def test_server_side_apply_removes_what_the_manager_stopped_applying(kubectl, api: k8s.ApiClient, ns: str) -> None:  # type: ignore[no-untyped-def]
    first = f"""
apiVersion: v1
kind: Pod
metadata: {{name: ssa, namespace: {ns}, labels: {{a: "1", b: "2"}}}}
spec:
  containers:
  - name: c
    image: img:1
"""
    kubectl("apply", "--server-side", "-f", "-", input=first)
    kubectl("-n", ns, "label", "pod", "ssa", "other=mine")  # another manager's field
    second = first.replace(', b: "2"', "").replace("image: img:1", "image: img:2")
    kubectl("apply", "--server-side", "-f", "-", input=second)
    pod = k8s.CoreV1Api(api).read_namespaced_pod("ssa", ns)
    assert pod.metadata.labels == {"a": "1", "other": "mine"}
    assert pod.spec.containers[0].image == "img:2"
