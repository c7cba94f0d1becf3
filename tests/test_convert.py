"""`powertrain convert`: Kubeflow PyTorchJobs and TrainJobs (examples/kubeflow, in the shape of Kubeflow's docs)
become valid TrainingJobs, and every field left behind is named on stderr."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from powertrain.api import TrainingJob, parse
from powertrain.cli import main

REPO = Path(__file__).resolve().parents[1]
KUBEFLOW = REPO / "examples" / "kubeflow"


def convert(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict[str, Any]], str]:
    code = main(["convert", *argv])
    out = capsys.readouterr()
    return code, [d for d in yaml.safe_load_all(out.out) if d], out.err


def gpu_mentions(obj: Any) -> int:
    return json.dumps(obj).count('nvidia.com/gpu"')


@pytest.mark.parametrize("path", sorted(KUBEFLOW.glob("*.yaml")), ids=lambda p: p.name)
def test_every_kubeflow_example_converts_to_a_valid_trainingjob(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, docs, err = convert(capsys, "-f", str(path))
    assert code == 0, err
    assert len(docs) == 1
    job = parse(TrainingJob, docs[0])
    # The operator adds the GPUs from gpusPerReplica; a template still asking for them would conflict.
    for ctr in docs[0]["spec"]["template"]["spec"]["containers"]:
        assert "nvidia.com/gpu" not in json.dumps(ctr.get("resources", {}))
    assert job.spec.gpus_per_replica >= 1
    assert "Traceback" not in err


def test_pytorch_simple_master_and_worker_become_one_gang_of_two(capsys: pytest.CaptureFixture[str]) -> None:
    code, [job], err = convert(capsys, "-f", str(KUBEFLOW / "pytorch-simple.yaml"))
    assert code == 0
    assert job["metadata"] == {"name": "pytorch-simple", "namespace": "kubeflow"}
    assert job["spec"]["replicas"] == 2  # the Master is rank 0
    assert job["spec"]["gpusPerReplica"] == 1
    ctr = job["spec"]["template"]["spec"]["containers"][0]
    assert ctr["command"] == ["python3", "/opt/pytorch-mnist/mnist.py", "--epochs=1"]
    assert job["spec"]["template"]["metadata"]["annotations"] == {"sidecar.istio.io/inject": "false"}
    assert "spec.pytorchReplicaSpecs.Worker.restartPolicy: 'OnFailure' not kept" in err


def test_kueue_multinode_job_keeps_queue_run_policy_volumes_and_resolves_priority_from_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = str(KUBEFLOW / "pytorch-kueue-llm.yaml")
    code, [job], err = convert(capsys, "-f", path, "--priority-class", "high-priority=1000")
    assert code == 0, err
    spec = job["spec"]
    assert (spec["replicas"], spec["gpusPerReplica"]) == (4, 8)
    assert spec["queue"] == "research"
    assert spec["priority"] == 1000
    assert spec["masterPort"] == 29500
    assert spec["runPolicy"] == {"backoffLimit": 2, "activeDeadlineSeconds": 86400, "ttlSecondsAfterFinished": 3600}
    assert job["metadata"]["labels"] == {"team": "nlp"}  # the Kueue label became spec.queue
    pod = spec["template"]["spec"]
    assert [v["name"] for v in pod["volumes"]] == ["dshm", "config"]
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert "schedulerName" not in pod
    assert "priorityClassName" not in pod
    assert pod["containers"][0]["resources"] == {
        "requests": {"cpu": "32", "memory": "512Gi"},
        "limits": {"memory": "512Gi"},
    }
    lines = err.splitlines()
    assert any("spec.runPolicy.cleanPodPolicy: 'Running' not kept" in line for line in lines)
    assert any(".spec.schedulerName: dropped ('default-scheduler')" in line for line in lines)
    assert not any("priorityClassName" in line for line in lines)


def test_unresolved_priority_class_is_reported_and_priority_left_at_zero(capsys: pytest.CaptureFixture[str]) -> None:
    code, [job], err = convert(capsys, "-f", str(KUBEFLOW / "pytorch-kueue-llm.yaml"))
    assert code == 0
    assert "priority" not in job["spec"]
    assert "spec.priorityClassName: 'high-priority' not resolved" in err
    assert "--priority-class high-priority=VALUE" in err


def test_priority_out_of_trainingjob_range_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(KUBEFLOW / "pytorch-kueue-llm.yaml")
    code, [job], err = convert(capsys, "-f", path, "--priority-class", "high-priority=2000000000")
    assert code == 0
    assert "priority" not in job["spec"]
    assert "2000000000, outside spec.priority's range" in err


def test_elastic_policy_bounds_become_spec_elastic(capsys: pytest.CaptureFixture[str]) -> None:
    code, [job], err = convert(capsys, "-f", str(KUBEFLOW / "pytorch-elastic-imagenet.yaml"))
    assert code == 0
    assert job["spec"]["elastic"] == {"minReplicas": 1, "maxReplicas": 3, "maxRestarts": 100}
    assert job["spec"]["replicas"] == 2
    assert job["spec"]["gpusPerReplica"] == 4
    assert "spec.elasticPolicy.rdzvBackend: not kept" in err
    assert "maxRestarts" not in err


def test_elastic_max_restarts_is_kept_and_a_bad_one_reported(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = {"minReplicas": 1, "maxReplicas": 4, "maxRestarts": 7}
    code, [job], err = run_stdin(capsys, monkeypatch, [pytorchjob(elasticPolicy=policy)])
    assert code == 0
    assert job["spec"]["elastic"]["maxRestarts"] == 7
    policy["maxRestarts"] = -1
    code, [job], err = run_stdin(capsys, monkeypatch, [pytorchjob(elasticPolicy=policy)])
    assert code == 0
    assert "maxRestarts" not in job["spec"]["elastic"]
    assert "spec.elasticPolicy.maxRestarts: -1 is not a whole number ≥ 0; not kept" in err


def test_trainjob_maps_nodes_and_resources_and_says_the_runtime_is_not_read(capsys: pytest.CaptureFixture[str]) -> None:
    code, [job], err = convert(capsys, "-f", str(KUBEFLOW / "trainjob-torch-distributed.yaml"))
    assert code == 0
    assert (job["spec"]["replicas"], job["spec"]["gpusPerReplica"]) == (2, 2)
    assert job["spec"]["queue"] == "default"
    ctr = job["spec"]["template"]["spec"]["containers"][0]
    assert ctr["image"] == "docker.io/example/pytorch-mnist:1.0"
    assert ctr["resources"] == {"requests": {"cpu": "4", "memory": "16Gi"}}
    assert "spec.runtimeRef: ClusterTrainingRuntime 'torch-distributed' not resolved" in err


def pytorchjob(name: str = "job", **spec: Any) -> dict[str, Any]:
    worker = {
        "replicas": 2,
        "template": {"spec": {"containers": [{"name": "pytorch", "image": "img:1"}]}},
    }
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name},
        "spec": {"pytorchReplicaSpecs": {"Worker": worker}, **spec},
    }


def run_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, docs: list[Any], *argv: str
) -> tuple[int, list[dict[str, Any]], str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(yaml.safe_dump_all(docs)))
    return convert(capsys, "-f", "-", *argv)


def test_stdin_with_several_documents_converts_the_good_ones_and_fails_on_the_rest(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    no_image = {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": "t"},
        "spec": {"runtimeRef": {"name": "torch-distributed"}, "trainer": {"numNodes": 2}},
    }
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}}
    code, docs, err = run_stdin(capsys, monkeypatch, [pytorchjob("a"), no_image, deployment, pytorchjob("b")])
    assert code == 1
    assert [d["metadata"]["name"] for d in docs] == ["a", "b"]
    assert "stdin document 2: TrainJob t: spec.trainer.image is not set" in err
    assert "stdin document 3: kind 'Deployment' (apps/v1) cannot be converted" in err


def test_output_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "tj.yaml"
    code = main(["convert", "-f", str(KUBEFLOW / "pytorch-simple.yaml"), "-o", str(out)])
    assert code == 0
    assert capsys.readouterr().out == ""
    parse(TrainingJob, yaml.safe_load(out.read_text()))


def test_nproc_per_node_number_gives_the_gpus_when_the_template_asks_none(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, [job], err = run_stdin(capsys, monkeypatch, [pytorchjob(nprocPerNode="8")])
    assert code == 0
    assert "gpusPerReplica" not in err
    assert job["spec"]["gpusPerReplica"] == 8


def test_no_gpus_anywhere_is_said_not_silently_set(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, [job], err = run_stdin(capsys, monkeypatch, [pytorchjob(nprocPerNode="auto")])
    assert code == 0
    assert job["spec"]["gpusPerReplica"] == 1
    assert "nvidia.com/gpu: not set and processes per node is auto: gpusPerReplica set to 1" in err


def test_processes_per_node_that_differ_from_the_gpus_are_reported(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = pytorchjob(nprocPerNode="2")
    ctr = doc["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]
    ctr["resources"] = {"limits": {"nvidia.com/gpu": "8"}}
    ctr["env"] = [{"name": "MASTER_PORT", "value": "1234"}, {"name": "NCCL_DEBUG", "value": "INFO"}]
    code, [job], err = run_stdin(capsys, monkeypatch, [doc])
    assert code == 0
    assert job["spec"]["gpusPerReplica"] == 8
    assert "spec.nprocPerNode: 2 processes per node not kept" in err
    assert job["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "NCCL_DEBUG", "value": "INFO"}]
    assert "dropped MASTER_PORT: the operator sets them" in err


def test_training_container_goes_first_and_a_different_master_template_is_reported(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = pytorchjob()
    worker = doc["spec"]["pytorchReplicaSpecs"]["Worker"]
    worker["template"]["spec"]["containers"].insert(0, {"name": "sidecar", "image": "log:1"})
    doc["spec"]["pytorchReplicaSpecs"]["Master"] = {
        "replicas": 1,
        "template": {"spec": {"containers": [{"name": "pytorch", "image": "img:2"}]}},
    }
    code, [job], err = run_stdin(capsys, monkeypatch, [doc])
    assert code == 0
    assert [c["name"] for c in job["spec"]["template"]["spec"]["containers"]] == ["pytorch", "sidecar"]
    assert job["spec"]["replicas"] == 3
    assert "spec.pytorchReplicaSpecs.Master.template: differs from the Worker template" in err


def test_elastic_bounds_that_exclude_the_replicas_are_reported(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, [job], err = run_stdin(capsys, monkeypatch, [pytorchjob(elasticPolicy={"minReplicas": 3, "maxReplicas": 5})])
    assert code == 0
    assert "elastic" not in job["spec"]
    assert "does not contain the 2 Worker replicas; spec.elastic not set" in err


def test_a_conversion_that_fails_validation_names_the_field(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = pytorchjob(name="x")
    doc["metadata"]["labels"] = {"kueue.x-k8s.io/queue-name": "Not_A_DNS_Label"}
    code, docs, err = run_stdin(capsys, monkeypatch, [doc])
    assert code == 1
    assert docs == []
    assert "the converted TrainingJob is not valid" in err
    assert "spec.queue" in err


def test_unreadable_input(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["convert", "-f", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1\n")
    assert main(["convert", "-f", str(bad)]) == 2
    assert "not valid YAML" in capsys.readouterr().err


async def test_priority_classes_are_looked_up_in_the_cluster(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A PriorityClass (scheduling.k8s.io) and a Kueue WorkloadPriorityClass, served over the REST API."""

    async def priority_class(request: web.Request) -> web.Response:
        if request.match_info["name"] == "high-priority":
            return web.json_response({"kind": "PriorityClass", "metadata": {"name": "high-priority"}, "value": 5000})
        return web.json_response({"kind": "Status", "reason": "NotFound", "code": 404}, status=404)

    async def workload_priority_class(request: web.Request) -> web.Response:
        if request.match_info["name"] == "batch":
            return web.json_response({"kind": "WorkloadPriorityClass", "metadata": {"name": "batch"}, "value": -10})
        return web.json_response({"kind": "Status", "reason": "NotFound", "code": 404}, status=404)

    app = web.Application()
    app.router.add_get("/apis/scheduling.k8s.io/v1/priorityclasses/{name}", priority_class)
    app.router.add_get("/apis/kueue.x-k8s.io/v1beta1/workloadpriorityclasses/{name}", workload_priority_class)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    batch = pytorchjob("batch-job")
    batch["metadata"]["labels"] = {"kueue.x-k8s.io/priority-class": "batch"}
    unknown = pytorchjob("unknown-job")
    unknown["spec"]["runPolicy"] = {"schedulingPolicy": {"priorityClass": "nope"}}
    stdin_file = tmp_path / "jobs.yaml"
    stdin_file.write_text(yaml.safe_dump_all([batch, unknown]))
    try:
        code = await asyncio.to_thread(
            main,
            [
                "convert",
                "-f",
                str(KUBEFLOW / "pytorch-kueue-llm.yaml"),
                "-f",
                str(stdin_file),
                "--kubeconfig",
                str(kubeconfig),
            ],
        )
    finally:
        await runner.cleanup()
    out = capsys.readouterr()
    assert code == 0, out.err
    jobs = {d["metadata"]["name"]: d for d in yaml.safe_load_all(out.out)}
    assert jobs["llm-pretrain-kf"]["spec"]["priority"] == 5000
    assert jobs["batch-job"]["spec"]["priority"] == -10
    assert "priority" not in jobs["unknown-job"]["spec"]
    assert "'nope' not resolved: priorityclasses.scheduling.k8s.io: not found" in out.err


def test_missing_kubeconfig_says_not_found(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = str(KUBEFLOW / "pytorch-simple.yaml")
    assert main(["convert", "-f", path, "--kubeconfig", str(tmp_path / "nope")]) == 2
    assert "not found" in capsys.readouterr().err


def test_bad_priority_flag_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["convert", "-f", "x", "--priority-class", "high"])
    assert "is not NAME=VALUE" in capsys.readouterr().err
