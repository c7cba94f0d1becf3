"""The operator's per-job, per-node and budget gauges, as a pass writes them: present while the object exists."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import generate_latest
from test_controller_reconciler import node, setup

from powertrain.api import constants as c

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def budget_policy() -> dict[str, object]:
    return {
        "apiVersion": c.API_VERSION,
        "kind": "ClusterTrainingPolicy",
        "metadata": {"name": "default", "resourceVersion": "1"},
        "spec": {
            "power": {"clusterWatts": 100000, "domainWatts": 20000, "overrides": [{"domain": "r1", "watts": 15000}]}
        },
    }


async def test_a_pass_exports_domains_budgets_and_the_jobs_queue_phase_and_restarts() -> None:
    _kube, cache, rec, metrics = setup()
    cache.upsert("policies", budget_policy())
    await rec.run_pass(NOW)
    text = generate_latest(metrics.registry).decode()
    assert 'powertrain_node_domain_info{domain="r0",level="rack",node="n0"} 1.0' in text
    assert 'powertrain_node_domain_info{domain="n3",level="node",node="n3"} 1.0' in text
    assert 'powertrain_power_budget_watts{domain="cluster",level="cluster"} 100000.0' in text
    assert 'powertrain_power_budget_watts{domain="r0",level="rack"} 20000.0' in text
    assert 'powertrain_power_budget_watts{domain="r1",level="rack"} 15000.0' in text
    job = {"exported_namespace": "default", "training_job": "train"}
    info = {**job, "queue": "default", "phase": "Running"}
    assert metrics.registry.get_sample_value("powertrain_job_info", info) == 1.0
    assert metrics.registry.get_sample_value("powertrain_job_gang_restarts", job) == 0.0
    assert "powertrain_job_power_cap_watts{" not in text  # the job asks for no cap


async def test_series_of_deleted_jobs_and_nodes_disappear() -> None:
    _kube, cache, rec, metrics = setup()
    await rec.run_pass(NOW)
    cache.upsert("nodes", node("n9", "r9"))
    await rec.run_pass(NOW)
    assert 'node="n9"' in generate_latest(metrics.registry).decode()

    job = cache.get("jobs", "default", "train")
    assert job is not None
    cache.delete("jobs", job)
    cache.delete("nodes", node("n9", "r9"))
    await rec.run_pass(NOW)
    text = generate_latest(metrics.registry).decode()
    assert 'training_job="train"' not in text
    assert 'node="n9"' not in text
    assert 'domain="r9"' not in text
    assert 'powertrain_node_domain_info{domain="r0",level="rack",node="n0"} 1.0' in text


async def test_a_capped_job_exports_its_requested_cap() -> None:
    _kube, cache, rec, metrics = setup()
    job = cache.get("jobs", "default", "train")
    assert job is not None
    capped = {**job, "spec": {**job["spec"], "power": {"capWatts": 450}}, "metadata": {**job["metadata"]}}
    capped["metadata"]["resourceVersion"] = "11"
    cache.upsert("jobs", capped)
    await rec.run_pass(NOW)
    text = generate_latest(metrics.registry).decode()
    assert 'powertrain_job_power_cap_watts{exported_namespace="default",training_job="train"} 450.0' in text


async def test_gauges_read_zero_for_every_queue_and_phase_without_jobs() -> None:
    """A stat panel over an idle queue shows 0, not "No data": empty phases, queues and fragments are 0."""
    _kube, cache, rec, metrics = setup()
    policy = budget_policy()
    policy["spec"] = {"queues": [{"name": "default"}, {"name": "research"}]}
    cache.upsert("policies", policy)
    await rec.run_pass(NOW)
    value = metrics.registry.get_sample_value
    assert value("powertrain_jobs", {"phase": "Running", "queue": "default"}) == 1.0  # the setup's job
    for phase in ("Pending", "Queued", "Succeeded", "Failed", "Suspended"):
        assert value("powertrain_jobs", {"phase": phase, "queue": "default"}) == 0.0
    for phase in ("Pending", "Queued", "Running", "Succeeded", "Failed", "Suspended"):
        assert value("powertrain_jobs", {"phase": phase, "queue": "research"}) == 0.0
    assert value("powertrain_queue_pending_jobs", {"queue": "research"}) == 0.0
    assert value("powertrain_queue_pending_jobs", {"queue": "default"}) == 0.0
    samples = [s for f in metrics.registry.collect() for s in f.samples]
    models = {s.labels["model"] for s in samples if s.name == "powertrain_gpus_free"}
    assert models
    for model in models:
        assert value("powertrain_gpus_fragmented", {"model": model}) is not None
    assert value("powertrain_placements_total", {"queue": "research"}) == 0.0
