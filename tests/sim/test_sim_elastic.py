"""Elastic jobs in the replay: resized by the core's autoscaling, never over-allocating, finishing their work."""

from __future__ import annotations

import pytest
from sim_fixtures import MIXED_TRACE, job, small_cluster, trace

from powertrain.sim.engine import RESIZE_PENALTY_S, ElasticRange, Policy, simulate
from powertrain.sim.report import summarize


def test_elastic_share_zero_replays_exactly_as_before() -> None:
    jobs = trace(MIXED_TRACE, 80)
    plain = simulate(jobs, small_cluster(), Policy.TOPOLOGY, time_scale=0.5)
    zero = simulate(jobs, small_cluster(), Policy.TOPOLOGY, time_scale=0.5, elastic_share=0.0)
    assert [(r.start_s, r.end_s, r.nodes) for r in plain.records] == [
        (r.start_s, r.end_s, r.nodes) for r in zero.records
    ]


def test_elastic_jobs_resize_within_bounds_and_all_finish() -> None:
    result = simulate(trace(MIXED_TRACE, 150), small_cluster(), Policy.TOPOLOGY, time_scale=0.5, elastic_share=0.5)
    elastic = [r for r in result.records if r.elastic]
    assert 0.4 * len(result.records) <= len(elastic) <= 0.6 * len(result.records)
    assert all(r.end_s is not None for r in result.records)
    assert sum(r.resizes for r in elastic) > 0, "no elastic job was ever resized"
    assert all(r.resizes == 0 for r in result.records if not r.elastic)
    for r in elastic:
        assert r.left == pytest.approx(0.0, abs=1e-6)  # its work was done when it completed
        assert max(1, r.job.gpus // 2) <= len(r.nodes) <= 2 * r.job.gpus
    assert 0 < summarize(result).gpu_utilization <= 1


def test_a_lone_elastic_job_grows_into_an_idle_node_and_finishes_sooner() -> None:
    # One 4-GPU job on 8-GPU nodes: it may grow to 8 workers in its node after 120 s of idle GPUs.
    jobs = [job("a", 0.0, 4, packed=36_000.0)]
    fixed = simulate(jobs, small_cluster(), Policy.TOPOLOGY).records[0]
    grown = simulate(jobs, small_cluster(), Policy.TOPOLOGY, elastic_share=1.0).records[0]
    assert grown.resizes == 1
    assert len(grown.nodes) == 8
    assert fixed.end_s is not None
    assert grown.end_s is not None
    assert grown.end_s < fixed.end_s - RESIZE_PENALTY_S


def test_bad_elastic_share_is_refused() -> None:
    with pytest.raises(ValueError, match=r"elastic_share=1\.5 is invalid"):
        simulate([job("a", 0.0, 1, packed=10.0)], small_cluster(), Policy.TOPOLOGY, elastic_share=1.5)
    with pytest.raises(ValueError, match="not spread"):
        simulate([job("a", 0.0, 1, packed=10.0)], small_cluster(), Policy.SPREAD, elastic_share=0.5)


def test_a_wide_elastic_range_starts_a_job_on_one_worker_and_keeps_its_bounds() -> None:
    # 7 of 8 GPUs busy for an hour; then an 8-GPU job arrives. Narrow (min 4) it waits; wide (min 1) it starts.
    jobs = [job("busy", 0.0, 7, packed=3600.0), job("b", 10.0, 8, packed=36_000.0)]
    narrow = simulate(jobs, small_cluster()[:1], Policy.TOPOLOGY, elastic_share=1.0)
    wide = simulate(jobs, small_cluster()[:1], Policy.TOPOLOGY, elastic_share=1.0, elastic_range=ElasticRange(0.0, 4.0))
    assert narrow.records[1].start_s is not None
    assert narrow.records[1].start_s >= 3600.0
    assert wide.records[1].start_s == 10.0
    result = simulate(
        trace(MIXED_TRACE, 120), small_cluster(), Policy.TOPOLOGY, time_scale=0.5, elastic_share=1.0,
        elastic_range=ElasticRange(0.0, 4.0),
    )  # fmt: skip
    assert all(1 <= len(r.nodes) <= 4 * r.job.gpus for r in result.records)
    assert any(len(r.nodes) > 2 * r.job.gpus for r in result.records), "no job grew past the narrow range"


def test_bad_elastic_range_is_refused() -> None:
    with pytest.raises(ValueError, match=r"min_fraction=1\.5 is invalid"):
        ElasticRange(1.5, 2.0)
    with pytest.raises(ValueError, match=r"max_factor=0\.5 is invalid"):
        ElasticRange(0.5, 0.5)
