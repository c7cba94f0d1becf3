"""The PromQL evaluator behind the dashboard previews (tools/promql_replay.py) gives what Prometheus gives."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
from promql_replay import Evaluator, Store, Unsupported


def gpu(node: str, index: int, value: float, **extra: str) -> tuple[str, dict[str, str], float]:
    return ("powertrain_gpu_power_watts", {"node": node, "gpu": str(index), **extra}, value)


def domain(node: str, rack: str) -> tuple[str, dict[str, str], float]:
    return ("powertrain_node_domain_info", {"node": node, "level": "rack", "domain": rack}, 1.0)


SCRAPES = [
    (0.0, "agent", [gpu("a", 0, 100), gpu("a", 1, 300), gpu("b", 0, 200, training_job="j")]),
    (0.0, "operator", [domain("a", "r1"), domain("b", "r2"), ("powertrain_power_budget_watts",
                       {"level": "rack", "domain": "r1"}, 800.0)]),
    (1.0, "agent", [gpu("a", 0, 150), gpu("a", 1, 350)]),  # b's GPU is gone: stale from now on
    (1.0, "operator", [domain("a", "r1"), domain("b", "r2"), ("powertrain_power_budget_watts",
                       {"level": "rack", "domain": "r1"}, 800.0)]),
]  # fmt: skip


def values(result: object) -> dict[tuple[tuple[str, str], ...], float]:
    assert isinstance(result, dict)
    return {tuple(sorted(k)): v for k, v in result.items()}


@pytest.fixture
def ev() -> Evaluator:
    return Evaluator(Store.from_scrapes(SCRAPES))


def test_aggregation_by_labels_and_matchers(ev: Evaluator) -> None:
    assert values(ev.query("sum by (node) (powertrain_gpu_power_watts)", 0.0)) == {
        (("node", "a"),): 400.0,
        (("node", "b"),): 200.0,
    }
    assert values(ev.query('avg(powertrain_gpu_power_watts{node=~"a|c", gpu!="1"})', 0.0)) == {(): 100.0}
    assert values(ev.query('count(powertrain_gpu_power_watts{training_job!=""})', 0.0)) == {(): 1.0}


def test_a_series_missing_from_the_latest_scrape_is_stale(ev: Evaluator) -> None:
    assert values(ev.query("sum(powertrain_gpu_power_watts)", 1.0)) == {(): 500.0}
    assert values(ev.query('count(powertrain_gpu_power_watts{node="b"}) or vector(0)', 1.0)) == {(): 0.0}


def test_group_left_join_and_one_to_one_on(ev: Evaluator) -> None:
    joined = (
        "sum by (domain) (powertrain_gpu_power_watts * on (node) group_left (domain) "
        'max by (node, domain) (powertrain_node_domain_info{level="rack"}))'
    )
    assert values(ev.query(joined, 0.0)) == {(("domain", "r1"),): 400.0, (("domain", "r2"),): 200.0}
    used = f'{joined} / on (domain) max by (domain) (powertrain_power_budget_watts{{level="rack"}}) * 100'
    assert values(ev.query(used, 0.0)) == {(("domain", "r1"),): 50.0}  # r2 has no budget: dropped by the match


def test_comparison_filters_unless_bool(ev: Evaluator) -> None:
    got = values(ev.query("powertrain_gpu_power_watts > 150", 0.0))
    assert sorted(v for v in got.values()) == [200.0, 300.0]
    assert sorted(values(ev.query("powertrain_gpu_power_watts > bool 150", 0.0)).values()) == [0.0, 1.0, 1.0]


def test_rate_and_increase_handle_counter_resets() -> None:
    counter = "powertrain_gpu_energy_joules_total"
    scrapes = [(float(t), "agent", [(counter, {"node": "a"}, v)]) for t, v in enumerate([0, 10, 20, 5, 15])]
    ev = Evaluator(Store.from_scrapes(scrapes))
    # 0→10→20, reset, 5→15: 20 + 5 + 10 = 35 joules over 4 s.
    assert values(ev.query(f"increase({counter}[1h])", 4.0)) == {(("node", "a"),): 35.0}
    assert values(ev.query(f"rate({counter}[1h])", 4.0)) == {(("node", "a"),): 8.75}
    # The window (2 s, 4 s] holds 5 and 15: 10 J in the 1 s between them (no extrapolation).
    assert values(ev.query(f"rate({counter}[2s])", 4.0)) == {(("node", "a"),): 10.0}


def test_histogram_quantile_interpolates_within_the_bucket() -> None:
    name = "powertrain_queue_wait_seconds_bucket"
    buckets = [("1", 2.0), ("10", 6.0), ("+Inf", 8.0)]
    scrapes = [(0.0, "operator", [(name, {"queue": "q", "le": le}, n) for le, n in buckets])]
    ev = Evaluator(Store.from_scrapes(scrapes))
    # rank 4 of 8 lies halfway through the (1, 10] bucket's 4 observations.
    assert values(ev.query(f"histogram_quantile(0.5, {name})", 0.0)) == {(("queue", "q"),): 5.5}
    assert values(ev.query(f"histogram_quantile(0.99, {name})", 0.0)) == {(("queue", "q"),): 10.0}


def test_what_it_cannot_evaluate_is_refused_not_guessed(ev: Evaluator) -> None:
    with pytest.raises(Unsupported, match="topk"):
        ev.query("topk(1, powertrain_gpu_power_watts)", 0.0)


DASHBOARDS = Path(__file__).resolve().parents[2] / "charts" / "powertrain" / "dashboards"


@pytest.mark.parametrize("path", sorted(DASHBOARDS.glob("*.json")), ids=lambda p: p.stem)
def test_every_dashboard_query_can_be_previewed(path: Path) -> None:
    """The previews evaluate each panel's PromQL; a query using something the evaluator lacks must fail here."""
    import json

    from plot_dashboard_previews import Data

    store = Store.from_scrapes(SCRAPES)
    data = Data(store, {"level": "rack", "node": ".*", "namespace": "default", "job": "j"}, start_wall=0.0)
    dashboard = json.loads(path.read_text())
    targets = [t for p in dashboard["panels"] for t in p.get("targets", [])]
    assert targets
    for target in targets:
        data.instant(target)  # raises Unsupported for anything not implemented
