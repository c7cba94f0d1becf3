"""kubectl's own commands for workloads and RBAC against the sandbox API server (kubectl sends these as protobuf).

Kubernetes docs followed: "kubectl create" (deployment, job, role, rolebinding, clusterrolebinding, token),
"kubectl auth can-i" / "kubectl auth whoami" with `--as` (User impersonation), "Using RBAC Authorization".
"""

from __future__ import annotations

from typing import Any

from kubernetes import client as k8s


def test_kubectl_create_workloads_and_rbac_then_can_i(kubectl: Any, api: k8s.ApiClient, ns: str) -> None:
    kubectl("-n", ns, "create", "deployment", "web", "--image=nginx:1", "--replicas=2", "--port=80")
    deployment = k8s.AppsV1Api(api).read_namespaced_deployment("web", ns)
    assert deployment.spec.replicas == 2
    container = deployment.spec.template.spec.containers[0]
    assert (container.name, container.image, container.ports[0].container_port) == ("nginx", "nginx:1", 80)
    assert container.image_pull_policy == "IfNotPresent"  # defaulted by the server, not sent empty
    assert deployment.spec.selector.match_labels == {"app": "web"}

    kubectl("-n", ns, "create", "job", "once", "--image=busybox", "--", "echo", "hi")
    job = k8s.BatchV1Api(api).read_namespaced_job("once", ns)
    assert job.spec.template.spec.containers[0].command == ["echo", "hi"]
    assert job.spec.template.spec.restart_policy == "Never"

    user = f"system:serviceaccount:{ns}:robot"
    kubectl("-n", ns, "create", "serviceaccount", "robot")
    assert kubectl("-n", ns, "auth", "can-i", "list", "pods", f"--as={user}", check=False).stdout.strip() == "no"
    kubectl("-n", ns, "create", "role", "reader", "--verb=get,list,watch", "--resource=pods,deployments.apps")
    kubectl("-n", ns, "create", "rolebinding", "reader", "--role=reader", f"--serviceaccount={ns}:robot")
    assert kubectl("-n", ns, "auth", "can-i", "list", "pods", f"--as={user}").stdout.strip() == "yes"
    assert kubectl("-n", ns, "auth", "can-i", "get", "deployments.apps", f"--as={user}").stdout.strip() == "yes"
    assert kubectl("-n", ns, "auth", "can-i", "delete", "pods", f"--as={user}", check=False).stdout.strip() == "no"
    assert kubectl("auth", "can-i", "list", "pods", "-A", f"--as={user}", check=False).stdout.strip() == "no"

    denied = kubectl("-n", ns, "delete", "deployment", "web", f"--as={user}", check=False)
    assert denied.returncode != 0
    assert (
        f'Error from server (Forbidden): deployments.apps "web" is forbidden: User "{user}" cannot delete '
        f'resource "deployments" in API group "apps" in the namespace "{ns}"'
    ) in denied.stderr
    whoami = kubectl("auth", "whoami", f"--as={user}").stdout
    assert user in whoami
    assert f"system:serviceaccounts:{ns}" in whoami
    token = kubectl("-n", ns, "create", "token", "robot", "--duration=1h").stdout.strip()
    assert token.count(".") == 2

    kubectl("create", "clusterrolebinding", f"robot-{ns}", "--clusterrole=view", f"--serviceaccount={ns}:robot")
    assert kubectl("auth", "can-i", "list", "pods", "-A", f"--as={user}").stdout.strip() == "yes"
    kubectl("delete", "clusterrolebinding", f"robot-{ns}")
