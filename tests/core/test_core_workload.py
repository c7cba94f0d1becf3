"""Worker pods and the headless Service: names, labels, ownership, GPUs and Kubeflow's environment."""

from __future__ import annotations

from typing import Any

from core_builders import job

from powertrain.api import TrainingJob, parse
from powertrain.api import constants as c
from powertrain.core.workload import check_job_name, render_gang, render_pod, render_service, replica_requests


def tj(**kw: Any) -> TrainingJob:
    return parse(TrainingJob, job("llm", **kw))


def env_of(pod: dict[str, Any], container: int = 0) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in pod["spec"]["containers"][container]["env"]}


def test_pod_names_labels_owner_and_scheduling() -> None:
    pod = render_pod(tj(replicas=4, gpus=8), rank=2, generation=3)
    meta = pod["metadata"]
    assert meta["name"] == "llm-worker-2"
    assert meta["namespace"] == "default"
    assert meta["labels"] == {c.JOB_NAME_LABEL: "llm", c.REPLICA_INDEX_LABEL: "2", c.GANG_GENERATION_LABEL: "3"}
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "powertrain.dev/v1alpha1",
            "kind": "TrainingJob",
            "name": "llm",
            "uid": "uid-llm",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    spec = pod["spec"]
    assert spec["schedulerName"] == "powertrain"
    assert spec["hostname"] == "llm-worker-2"
    assert spec["subdomain"] == "llm"
    assert spec["restartPolicy"] == "Never"
    assert "nodeName" not in spec
    assert spec["containers"][0]["resources"]["limits"] == {c.GPU_RESOURCE: "8"}
    assert render_pod(tj(), 0, 1, node_name="n7")["spec"]["nodeName"] == "n7"


def test_environment_matches_kubeflow_pytorchjob() -> None:
    env = env_of(render_pod(tj(replicas=4, gpus=8), rank=3, generation=1))
    assert env == {
        "MASTER_ADDR": "llm-worker-0.llm",
        "MASTER_PORT": "23456",
        "WORLD_SIZE": "4",
        "RANK": "3",
        "PET_NNODES": "4",
        "PET_NPROC_PER_NODE": "8",
        "PET_NODE_RANK": "3",
        "PET_MASTER_ADDR": "llm-worker-0.llm",
        "PET_MASTER_PORT": "23456",
    }


def test_user_template_is_merged_not_clobbered() -> None:
    pod_spec = {
        "containers": [
            {
                "name": "trainer",
                "image": "img",
                "env": [{"name": "NCCL_DEBUG", "value": "INFO"}, {"name": "MASTER_PORT", "value": "29500"}],
                "resources": {"requests": {"cpu": "4", c.GPU_RESOURCE: "4"}, "limits": {"memory": "64Gi"}},
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            },
            {"name": "sidecar", "image": "side"},
        ],
        "volumes": [{"name": "data", "emptyDir": {}}],
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
    }
    obj = job("llm", replicas=2, gpus=4, pod_spec=pod_spec)
    obj["spec"]["template"]["metadata"] = {"labels": {"team": "nlp"}, "annotations": {"note": "x"}}
    pod = render_pod(parse(TrainingJob, obj), rank=1, generation=1)
    trainer = pod["spec"]["containers"][0]
    env = env_of(pod)
    assert env["NCCL_DEBUG"] == "INFO"
    assert env["MASTER_PORT"] == "29500"  # theirs wins
    assert env["RANK"] == "1"
    assert [e["name"] for e in trainer["env"]][:2] == ["NCCL_DEBUG", "MASTER_PORT"]
    assert trainer["resources"]["limits"] == {"memory": "64Gi", c.GPU_RESOURCE: "4"}
    assert trainer["resources"]["requests"] == {"cpu": "4", c.GPU_RESOURCE: "4"}  # requests == limits for GPUs
    assert trainer["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]
    assert pod["spec"]["volumes"] == [{"name": "data", "emptyDir": {}}]
    assert pod["spec"]["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists"}]
    assert env_of(pod, 1)["WORLD_SIZE"] == "2"
    assert pod["metadata"]["labels"]["team"] == "nlp"
    assert pod["metadata"]["annotations"] == {"note": "x"}
    assert obj["spec"]["template"]["spec"]["containers"][0]["env"][1]["value"] == "29500"  # input untouched


def test_replica_requests_include_gpus_cpu_memory_and_a_pod_slot() -> None:
    pod_spec = {"containers": [{"name": "t", "image": "i", "resources": {"requests": {"cpu": "8", "memory": "32Gi"}}}]}
    assert replica_requests(tj(gpus=4, pod_spec=pod_spec).spec) == {
        "cpu": 8000,
        "memory": 32 * 2**30,
        c.GPU_RESOURCE: 4,
        "pods": 1,
    }


def test_gang_and_headless_service() -> None:
    training_job = tj(replicas=3)
    pods = render_gang(training_job, ["a", "a", "b"], generation=2)
    assert [p["metadata"]["name"] for p in pods] == ["llm-worker-0", "llm-worker-1", "llm-worker-2"]
    service = render_service(training_job)
    assert service["metadata"]["name"] == "llm"
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == {c.JOB_NAME_LABEL: "llm"}
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["ports"][0]["port"] == 23456
    assert service["metadata"]["ownerReferences"][0]["controller"] is True


def test_job_names_that_cannot_name_workers_are_refused() -> None:
    assert check_job_name("llm", 128) is None
    assert "must start with a letter" in (check_job_name("9lives", 1) or "")
    message = check_job_name("x" * 55, 100) or ""
    assert "'" + "x" * 55 + "-worker-99' must be at most 63 characters; use a name of at most 53 characters" in message


def test_elastic_workers_get_torchrun_elastic_rendezvous_the_same_in_every_pod() -> None:
    obj = job("llm", replicas=2, gpus=8)
    obj["spec"]["elastic"] = {"minReplicas": 1, "maxReplicas": 4, "maxRestarts": 7}
    elastic = parse(TrainingJob, obj)
    envs = [env_of(render_pod(elastic, rank=r, generation=1)) for r in range(3)]
    assert envs[0] == {
        "MASTER_ADDR": "llm-worker-0.llm",
        "MASTER_PORT": "23456",
        "PET_NNODES": "1:4",
        "PET_NPROC_PER_NODE": "8",
        "PET_RDZV_BACKEND": "c10d",
        "PET_RDZV_ENDPOINT": "llm-worker-0.llm:23456",
        "PET_RDZV_ID": "uid-llm",
        "PET_MAX_RESTARTS": "7",
    }
    # No size or rank baked in: a survivor's env stays right after any resize.
    assert envs[1] == envs[0] == envs[2]


def test_render_gang_from_a_rank_makes_only_the_new_ranks() -> None:
    pods = render_gang(tj(replicas=4), ["a", "a", "b", "b"], generation=2, first_rank=2)
    assert [p["metadata"]["name"] for p in pods] == ["llm-worker-2", "llm-worker-3"]
