from __future__ import annotations

from typing import Any

from powertrain.api import constants as c
from powertrain.controllers.cache import ClusterCache


def pod(name: str, rv: int, *, uid: str = "", job: str | None = "j", node: str | None = None) -> dict[str, Any]:
    labels = {c.JOB_NAME_LABEL: job} if job else {}
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": uid or f"uid-{name}",
            "resourceVersion": str(rv),
            "labels": labels,
        },
        "spec": {"nodeName": node} if node else {},
        "status": {"phase": "Running" if node else "Pending"},
    }


def test_an_older_watch_event_never_overwrites_a_newer_view() -> None:
    cache = ClusterCache()
    assert cache.upsert("pods", pod("a", 5))
    assert not cache.upsert("pods", pod("a", 3))
    assert cache.get("pods", "ns", "a")["metadata"]["resourceVersion"] == "5"  # type: ignore[index]


def test_a_relist_keeps_newer_watched_objects_and_drops_vanished_ones() -> None:
    cache = ClusterCache()
    cache.upsert("pods", pod("a", 9))
    cache.upsert("pods", pod("gone", 2))
    cache.replace_all("pods", [pod("a", 4), pod("b", 4)])
    assert cache.get("pods", "ns", "a")["metadata"]["resourceVersion"] == "9"  # type: ignore[index]
    assert cache.get("pods", "ns", "b") is not None
    assert cache.get("pods", "ns", "gone") is None


def test_an_object_deleted_during_a_relist_does_not_come_back() -> None:
    cache = ClusterCache()
    cache.upsert("pods", pod("a", 1))
    cache.delete("pods", pod("a", 2))
    cache.replace_all("pods", [pod("a", 1)])  # the list was taken before the delete
    assert cache.get("pods", "ns", "a") is None


def test_deleting_an_old_incarnation_keeps_the_new_one() -> None:
    cache = ClusterCache()
    cache.upsert("pods", pod("a", 7, uid="new"))
    cache.delete("pods", pod("a", 3, uid="old"))
    assert cache.get("pods", "ns", "a") is not None


def test_only_pods_that_matter_are_kept() -> None:
    cache = ClusterCache()
    assert not cache.upsert("pods", pod("unbound-other", 1, job=None))
    assert cache.upsert("pods", pod("bound-other", 1, job=None, node="n1"))  # holds resources on n1
    assert cache.upsert("pods", pod("ours", 1))
    finished = pod("bound-other", 2, job=None, node="n1")
    finished["status"]["phase"] = "Succeeded"
    cache.upsert("pods", finished)
    assert cache.get("pods", "ns", "bound-other") is None
    assert [p["metadata"]["name"] for p in cache.pods_of_job("ns", "j")] == ["ours"]


def test_changes_since_the_last_pass_are_reported_once() -> None:
    cache = ClusterCache()
    cache.upsert("pods", pod("a", 1))
    cache.upsert("pods", pod("b", 1))
    cache.delete("pods", pod("b", 2))
    first = cache.drain_changes()["pods"]
    assert set(first) == {("ns", "a"), ("ns", "b")}
    assert first[("ns", "b")] is None
    assert cache.drain_changes()["pods"] == {}
    cache.replace_all("pods", [pod("c", 3)])
    after_relist = cache.drain_changes()["pods"]
    assert after_relist[("ns", "a")] is None
    assert after_relist[("ns", "c")] is not None
