from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import generate_latest

import powertrain.controllers
from powertrain.metrics import RECONCILE_OPERATIONS, OperatorMetrics, metric_names


def test_every_documented_metric_is_exposed_with_its_documented_name() -> None:
    m = OperatorMetrics()
    m.jobs.labels("Running", "default").set(2)
    m.queue_wait.labels("default").observe(3.0)
    m.decision_time.observe(0.002)
    for g in (m.gpus_allocated, m.gpus_free, m.gpus_fragmented):
        g.labels("NVIDIA-H200").set(8)
    m.queue_pending.labels("default").set(1)
    m.gang_restarts.labels("default", "PodFailed").inc()
    m.preemptions.labels("default").inc()
    m.placements.labels("default").inc()
    m.resizes.labels("default", "grow").inc()
    m.reconcile_errors.labels("create_pod").inc()
    m.passes.inc()
    m.leader.set(1)
    m.node_domain_info.labels("n1", "rack", "r1").set(1)
    m.power_budget.labels("cluster", "cluster").set(400_000)
    m.power_budget_draw.labels("cluster", "cluster").set(350_000)
    m.job_info.labels("ml", "llm", "default", "Running").set(1)
    m.job_gang_restarts.labels("ml", "llm").set(2)
    m.job_power_cap.labels("ml", "llm").set(400)
    m.job_sm_activity.labels("ml", "llm", "min").set(0)
    m.job_network.labels("ml", "llm", "rx").set(1e9)
    m.job_storage.labels("ml", "llm", "read").set(4e7)
    m.job_cost.labels("ml", "llm").set(12.5)
    m.job_efficiency.labels("ml", "llm", "Straggler").set(1)
    m.job_efficiency_evidence.labels("ml", "llm", "slowest_ratio").set(0.1)
    m.job_reschedule_condition.labels("ml", "llm", "Straggler").set(1)
    m.reschedules.labels("default", "StragglerMoved").inc()
    text = generate_latest(m.registry).decode()
    exposed = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    for name in metric_names():
        assert name in exposed or f"{name}_count" in exposed, name
        assert name.startswith("powertrain_")


def test_relabelling_a_gauge_drops_series_that_vanished() -> None:
    m = OperatorMetrics()
    m.set_labelled(m.jobs, {("Running", "default"): 1, ("Queued", "research"): 2})
    m.set_labelled(m.jobs, {("Running", "default"): 3})
    text = generate_latest(m.registry).decode()
    assert 'powertrain_jobs{phase="Running",queue="default"} 3.0' in text
    assert "research" not in text


def test_two_operator_metric_sets_do_not_collide() -> None:
    OperatorMetrics()
    OperatorMetrics()


def test_syncing_a_gauge_drops_vanished_series_and_keeps_the_rest() -> None:
    m = OperatorMetrics()
    m.sync_labelled(m.job_info, {("ml", "a", "default", "Running"): 1, ("ml", "b", "default", "Queued"): 1})
    m.sync_labelled(m.job_info, {("ml", "a", "default", "Succeeded"): 1, ("ml", "c", "default", "Queued"): 1})
    text = generate_latest(m.registry).decode()
    assert 'training_job="a"' in text
    assert 'phase="Succeeded"' in text
    assert 'phase="Running"' not in text
    assert 'training_job="b"' not in text
    assert 'training_job="c"' in text


def test_exported_label_names_never_collide_with_prometheus_target_labels() -> None:
    reserved = {"pod", "namespace", "job", "instance", "container", "service", "endpoint"}
    from powertrain.metrics import METRICS

    for doc in METRICS:
        assert not reserved & set(doc.labels), doc.name


def test_counters_of_known_label_sets_start_at_zero() -> None:
    """A counter first seen at 1 shows no increase in Prometheus; every queue's and operation's starts at 0."""
    m = OperatorMetrics()
    m.start_queues(["default", "research"], ["PodFailed", "NodeLost"])
    text = generate_latest(m.registry).decode()
    for queue in ("default", "research"):
        assert f'powertrain_placements_total{{queue="{queue}"}} 0.0' in text
        assert f'powertrain_preemptions_total{{queue="{queue}"}} 0.0' in text
        assert f'powertrain_job_resizes_total{{direction="grow",queue="{queue}"}} 0.0' in text
        assert f'powertrain_job_resizes_total{{direction="shrink",queue="{queue}"}} 0.0' in text
        assert f'powertrain_queue_wait_seconds_count{{queue="{queue}"}} 0.0' in text
        assert f'powertrain_gang_restarts_total{{queue="{queue}",reason="NodeLost"}} 0.0' in text
    for operation in RECONCILE_OPERATIONS:
        assert f'powertrain_reconcile_errors_total{{operation="{operation}"}} 0.0' in text
    m.placements.labels("default").inc()
    m.start_queues(["default"], ["PodFailed"])  # a later pass never resets what was counted
    assert 'powertrain_placements_total{queue="default"} 1.0' in generate_latest(m.registry).decode()


def test_every_operation_the_controllers_count_errors_for_is_known() -> None:
    controllers = Path(powertrain.controllers.__file__).parent
    used: set[str] = set()
    for path in controllers.glob("*.py"):
        source = path.read_text()
        used |= set(re.findall(r'_call\(\s*"(\w+)"', source))
        used |= set(re.findall(r'reconcile_errors\.labels\("(\w+)"\)', source))
    assert used, "no operation found: the pattern no longer matches the controllers"
    assert used <= set(RECONCILE_OPERATIONS), f"add to RECONCILE_OPERATIONS: {sorted(used - set(RECONCILE_OPERATIONS))}"
