"""`Sandbox` as the tests and the CLI use it: kubeconfig for the real kubernetes client, CRDs, nodes, timings."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from powertrain.api import constants as c
from powertrain.sandbox.cluster import Sandbox, SandboxConfig, SandboxError
from powertrain.sandbox.nodes import NodeConfigError


def test_kubernetes_client_reads_the_kubeconfig_and_sees_gpu_nodes_and_crds(tmp_path: Path) -> None:
    config_ = SandboxConfig(nodes=3, gpus_per_node=4, gpu_model="NVIDIA-A100-SXM4-80GB", topology="rack=3,nvlink=1")
    with Sandbox(config_) as sb:
        path = sb.write_kubeconfig(tmp_path / "kc")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds the token
        kc = yaml.safe_load(path.read_text())
        assert kc["clusters"][0]["cluster"]["server"].startswith(("https://127.0.0.1:", "http://127.0.0.1:"))
        assert kc["users"][0]["user"]["token"] == sb.token
        api = config.new_client_from_config(config_file=str(path))
        try:
            nodes = client.CoreV1Api(api).list_node().items
            assert [n.metadata.name for n in nodes] == ["node-000", "node-001", "node-002"]
            labels = nodes[2].metadata.labels
            assert labels[c.GPU_PRODUCT_LABEL] == "NVIDIA-A100-SXM4-80GB"
            assert labels[c.RACK_LABEL] == "rack-2"
            assert labels[c.NVLINK_DOMAIN_LABEL] == "nvl-2"
            assert nodes[0].status.allocatable[c.GPU_RESOURCE] == "4"
            assert [cond.type for cond in nodes[0].status.conditions if cond.status == "True"] == ["Ready"]
            crds = client.ApiextensionsV1Api(api).list_custom_resource_definition().items
            assert {crd.metadata.name for crd in crds} >= {
                "trainingjobs.powertrain.dev",
                "clustertrainingpolicies.powertrain.dev",
                "nodetelemetries.powertrain.dev",
            }
        finally:
            api.close()
        temp_kubeconfig = sb.kubeconfig_path
        assert temp_kubeconfig.exists()
        assert sb.timings.node_count == 3
    assert not temp_kubeconfig.exists()  # the temporary kubeconfig goes with the sandbox


def test_requests_without_the_token_are_refused() -> None:
    with Sandbox(SandboxConfig(nodes=1, run_kubelet=False, run_scheduler=False, apply_crds=False)) as sb:
        kc = yaml.safe_load(sb.kubeconfig_path.read_text())
        kc["users"][0]["user"]["token"] = "wrong"
        api = config.new_client_from_config_dict(kc)
        try:
            with pytest.raises(client.ApiException) as exc:
                client.CoreV1Api(api).list_node()
            assert exc.value.status == 401
        finally:
            api.close()


def test_bad_node_flags_are_refused_before_anything_starts() -> None:
    with pytest.raises(NodeConfigError, match="--topology"):
        Sandbox(SandboxConfig(topology="rack=0"))


def test_a_stopped_sandbox_says_so() -> None:
    sb = Sandbox(SandboxConfig(nodes=1))
    with pytest.raises(SandboxError, match="not started"):
        _ = sb.url
    sb.stop()  # stopping what never started is harmless
