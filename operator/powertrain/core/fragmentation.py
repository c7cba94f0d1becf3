"""Fragmented GPUs: free GPUs that no gang waiting for room can use.

After a scheduling pass every waiting gang that fits somewhere has been placed, so while at least one gang
still waits for GPUs, every GPU left free is one none of them could be placed on: too few in one domain, on
the wrong model, or behind a filter. That is what the number shows (12 free GPUs while a 64-GPU gang waits
are 12 fragmented GPUs, even though more GPUs would not be fragments). Gangs that wait for a reason other
than room (queue quota, unknown queue, invalid spec) make nothing fragmented: more free GPUs would not help
them. A gang that is preempting others waits for room too: the GPUs already free cannot start it yet.
Without a gang waiting for room, free GPUs are idle capacity and 0 are fragmented.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from powertrain.core import conditions as cond
from powertrain.core.scheduler import Decisions

WAITING_FOR_ROOM: Final = frozenset(
    {
        cond.REASON_WAITING_FOR_RESOURCES,
        cond.REASON_TOPOLOGY,
        cond.REASON_NEVER_FITS,
        cond.REASON_NO_MATCHING_NODES,
        cond.REASON_WAITING_FOR_PREEMPTION,
        cond.REASON_WAITING_FOR_DEFRAGMENTATION,
    }
)


def gangs_waiting_for_room(decisions: Decisions) -> int:
    return sum(1 for w in decisions.waiting.values() if w.reason in WAITING_FOR_ROOM)


def fragmented_gpus(free_after_pass: Mapping[str, int], decisions: Decisions) -> dict[str, int]:
    """Per GPU model, the free GPUs (after this pass's placements) that no gang waiting for room can use."""
    starved = gangs_waiting_for_room(decisions) > 0
    return {model: max(free, 0) if starved else 0 for model, free in free_after_pass.items()}
