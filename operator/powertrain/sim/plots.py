"""PNG pictures of replays, one line per policy: job completion time CDF, GPUs in use and queue length over time.

matplotlib is an optional extra (`pip install 'powertrain[plot]'`); it is imported only when plots are drawn,
with the Agg backend, so it works without a display.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from powertrain.sim.engine import SimResult
from powertrain.sim.report import completion_times, gpus_in_use, queue_length

INSTALL_HINT = "--plot needs matplotlib: pip install 'powertrain[plot]' (or pip install 'matplotlib>=3.8,<4')"
FILES = ("jct-cdf.png", "gpu-utilization.png", "queue-length.png")
HOUR = 3600.0


class PlotsUnavailable(RuntimeError):
    """matplotlib is not installed."""


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, or PlotsUnavailable saying how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise PlotsUnavailable(INSTALL_HINT) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_plots(results: Sequence[SimResult], directory: Path, subtitle: str) -> list[Path]:
    """Draw the three pictures into `directory` (created if missing); returns the files written."""
    plt = pyplot()
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    for result in results:
        jct = [t / HOUR for t in completion_times(result)]
        if jct:
            ax.step(jct, [(i + 1) / len(jct) for i in range(len(jct))], where="post", label=str(result.policy))
    ax.set_xscale("log")
    ax.set_xlabel("job completion time (hours, log scale)")
    ax.set_ylabel("fraction of finished jobs")
    ax.set_ylim(0, 1.0)
    _finish(ax, "Job completion time CDF", subtitle)
    written.append(_save(fig, directory / FILES[0]))

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    for result in results:
        series = gpus_in_use(result)
        if series and result.total_gpus:
            ax.step(
                [t / HOUR for t, _ in series],
                [100.0 * g / result.total_gpus for _, g in series],
                where="post",
                label=str(result.policy),
            )
    ax.set_xlabel("simulated time (hours)")
    ax.set_ylabel("GPUs allocated (% of cluster)")
    ax.set_ylim(0, 105)
    _finish(ax, "GPU utilization over time", subtitle)
    written.append(_save(fig, directory / FILES[1]))

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    for result in results:
        series = queue_length(result)
        if series:
            ax.step([t / HOUR for t, _ in series], [n for _, n in series], where="post", label=str(result.policy))
    ax.set_xlabel("simulated time (hours)")
    ax.set_ylabel("jobs waiting to start")
    _finish(ax, "Queue length over time", subtitle)
    written.append(_save(fig, directory / FILES[2]))
    return written


def _finish(ax: Any, title: str, subtitle: str) -> None:
    ax.set_title(f"{title}\n{subtitle}", fontsize=10)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(title="policy")


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    fig.clf()
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
