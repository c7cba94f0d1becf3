"""Real data shipped inside the package, so examples, tests and `powertrain simulate` need no path after install.

Where each file comes from, its license and how it was made: README.md next to this module. Names a user can
type: `philly:<name>` for a job trace (`philly:seed0-ee9e8c`), `alibaba` for the Alibaba PAI GPU fleet.
"""

from __future__ import annotations

from pathlib import Path

# pip installs packages as plain directories (never zipped), so the files lie next to this module.
DATA_DIR = Path(__file__).resolve().parent
PHILLY_DIR = DATA_DIR / "philly-gavel"
ALIBABA_DIR = DATA_DIR / "alibaba-gpu-v2023"

ALIBABA_NODES = ALIBABA_DIR / "openb_node_list_gpu_node.csv"
"""1,213 GPU nodes of Alibaba's PAI cluster (sn, cpu_milli, memory_mib, gpu, model)."""
ALIBABA_PODS = ALIBABA_DIR / "openb_pod_list_default.csv"
"""8,152 tasks submitted to that cluster (cpu/memory/GPU requests, QoS, creation/scheduled/deletion times)."""
THROUGHPUTS = PHILLY_DIR / "throughputs.csv"
"""Gavel's measured steps/s per model, GPU type and count, packed vs spread."""

TRACE_PREFIX = "philly:"
FLEETS = {"alibaba": ALIBABA_NODES}
"""Packaged node lists by the name a user types for `--fleet` / `--cluster`."""


class DataNotFound(ValueError):
    """A packaged name that does not exist; the message lists the names that do."""


def philly_traces() -> list[str]:
    """The packaged Philly/Gavel job streams, by name (`seed0-ee9e8c`)."""
    return sorted(p.stem for p in PHILLY_DIR.glob("seed0-*.csv"))


def philly_trace(name: str) -> Path:
    """The packaged job trace `name` (with or without `.csv`)."""
    stem = name.removesuffix(".csv")
    path = PHILLY_DIR / f"{stem}.csv"
    if stem not in philly_traces():
        known = ", ".join(f"{TRACE_PREFIX}{n}" for n in philly_traces())
        raise DataNotFound(f"no packaged trace named {name!r}; packaged traces: {known} (or give a CSV file path)")
    return path


def trace_path(text: str) -> Path:
    """A `--trace` value: `philly:<name>` is a packaged trace, anything else a file path."""
    if text.startswith(TRACE_PREFIX):
        return philly_trace(text.removeprefix(TRACE_PREFIX))
    return Path(text)


def fleet_path(text: str) -> Path:
    """A `--fleet` / `--cluster` node list: a packaged fleet's name (`alibaba`) unless a file of that name exists."""
    if text in FLEETS and not Path(text).exists():
        return FLEETS[text]
    return Path(text)
