"""Bad power input gets a clear message and changes nothing else: two policies, an invalid policy, out-of-range
budget numbers."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from powertrain.api.policy import ClusterTrainingPolicy
from powertrain.api.validation import InvalidObject, parse
from powertrain.controllers.cache import ClusterCache
from powertrain.controllers.power_planner import PowerPlanner
from powertrain.core.power import PowerPlan
from powertrain.metrics import OperatorMetrics

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class FakePolicies:
    def __init__(self) -> None:
        self.statuses: dict[str, dict[str, Any]] = {}

    async def merge_patch(self, res: Any, name: str, patch: dict[str, Any], *_: Any, **__: Any) -> dict[str, Any]:
        self.statuses[name] = copy.deepcopy(patch["status"])
        return {}


def policies(*names: str) -> tuple[FakePolicies, PowerPlanner]:
    cache = ClusterCache()
    for name in names:
        cache.upsert("policies", {"metadata": {"name": name, "resourceVersion": "1", "generation": 2}, "spec": {}})
    api = FakePolicies()
    return api, PowerPlanner(api, cache, OperatorMetrics())  # type: ignore[arg-type]


def test_a_second_policy_is_told_it_is_ignored_and_the_default_one_reports_its_budgets() -> None:
    api, planner = policies("default", "team-b")
    asyncio.run(planner.write_policy_status(PowerPlan(caps={}), NOW))
    other = api.statuses["team-b"]["conditions"][0]
    assert (other["type"], other["status"], other["reason"]) == ("Active", "False", "NotDefault")
    default = {c["type"]: c for c in api.statuses["default"]["conditions"]}
    assert default["BudgetExceeded"]["status"] == "False"
    assert default["Valid"]["status"] == "True"
    api.statuses.clear()
    asyncio.run(planner.write_policy_status(PowerPlan(caps={}), NOW))
    assert api.statuses == {}  # unchanged: not written again


def test_an_invalid_default_policy_says_why_and_that_the_previous_one_stays() -> None:
    api, planner = policies("default")
    problem = "invalid ClusterTrainingPolicy: spec.power.clusterWatts: -5 is invalid: Input should be greater than 0"
    asyncio.run(planner.write_policy_status(PowerPlan(caps={}), NOW, problem))
    valid = {c["type"]: c for c in api.statuses["default"]["conditions"]}["Valid"]
    assert valid["status"] == "False"
    assert "clusterWatts" in valid["message"]
    assert "previous valid policy" in valid["message"]
    assert "observedGeneration" not in api.statuses["default"]


@pytest.mark.parametrize(
    ("power", "field"),
    [
        ({"clusterWatts": -5}, "spec.power.clusterWatts"),
        ({"nodeOverheadWatts": 10_000_000}, "spec.power.nodeOverheadWatts"),
        ({"overrides": [{"domain": "r1", "watts": 0}]}, "spec.power.overrides[0].watts"),
    ],
)
def test_out_of_range_budget_numbers_are_refused_with_the_field(power: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidObject) as err:
        parse(ClusterTrainingPolicy, {"metadata": {"name": "default"}, "spec": {"power": power}})
    assert field in str(err.value)
