"""Recordings of one NVIDIA H200, shipped inside the package: the replay backend's default trace and the
reference the fake NVML is checked against. Source and how each file was made: README.md next to this module.
"""

from __future__ import annotations

from pathlib import Path

# pip installs packages as plain directories (never zipped), so the files lie next to this module.
H200_DIR = Path(__file__).resolve().parent

H200_TRACE = H200_DIR / "nvml_trace.csv"
"""~10 samples/s for ~120 s through idle, matmul, copy, data-starved and memory-held phases."""
H200_PHASES = H200_DIR / "nvml_phases.json"
H200_STATIC = H200_DIR / "nvml_static.json"
H200_COSTS = H200_DIR / "nvml_costs.json"
H200_API_ANSWERS = H200_DIR / "nvml_api_answers.json"
H200_POWER_STEP = H200_DIR / "nvml_power_step.csv"
