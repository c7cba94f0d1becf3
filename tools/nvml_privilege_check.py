"""What can the node agent read from NVML without root? Evidence for the Helm chart's agent privileges.

READ-ONLY: this script never sets a power limit, clock or mode (no nvmlDeviceSet* call exists in it). It runs
the same reads as root and as an unprivileged user (uid/gid 65534, no capabilities: setuid drops them all)
and prints one JSON object: for each identity, each NVML query's answer or error.

Usage (as root, on a GPU machine; needs nvidia-ml-py): python3 tools/nvml_privilege_check.py > result.json
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

UNPRIVILEGED = 65534


def attempt(fn: Callable[[], Any]) -> dict[str, Any]:
    try:
        value = fn()
    except Exception as exc:  # NVMLError and friends: the error text is the finding
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    plain = isinstance(value, int | float | str | bool | list | type(None))
    return {"ok": True, "value": value if plain else str(value)}


def gpm_sm_activity(nvml: Any, handle: Any) -> dict[str, float]:
    first, second = nvml.nvmlGpmSampleAlloc(), nvml.nvmlGpmSampleAlloc()
    try:
        nvml.nvmlGpmSampleGet(handle, first)
        time.sleep(0.2)
        nvml.nvmlGpmSampleGet(handle, second)
        metrics = nvml.c_nvmlGpmMetricsGet_t()
        metrics.version = nvml.NVML_GPM_METRICS_GET_VERSION
        metrics.numMetrics = 2
        metrics.sample1, metrics.sample2 = first, second
        metrics.metrics[0].metricId = nvml.NVML_GPM_METRIC_SM_UTIL
        metrics.metrics[1].metricId = nvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL
        nvml.nvmlGpmMetricsGet(metrics)
        return {"sm_util": metrics.metrics[0].value, "tensor_util": metrics.metrics[1].value}
    finally:
        nvml.nvmlGpmSampleFree(first)
        nvml.nvmlGpmSampleFree(second)


def probe() -> dict[str, Any]:
    import pynvml as nvml

    out: dict[str, Any] = {"uid": os.getuid(), "euid": os.geteuid()}
    status = Path("/proc/self/status").read_text()
    out["cap_eff"] = next(line.split()[1] for line in status.splitlines() if line.startswith("CapEff"))
    out["init"] = attempt(nvml.nvmlInit)
    if not out["init"]["ok"]:
        return out
    h = nvml.nvmlDeviceGetHandleByIndex(0)
    queries: dict[str, Callable[[], Any]] = {
        "name": lambda: nvml.nvmlDeviceGetName(h),
        "power_usage_mw": lambda: nvml.nvmlDeviceGetPowerUsage(h),
        "enforced_power_limit_mw": lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(h),
        "power_limit_constraints_mw": lambda: list(nvml.nvmlDeviceGetPowerManagementLimitConstraints(h)),
        "total_energy_mj": lambda: nvml.nvmlDeviceGetTotalEnergyConsumption(h),
        "temperature_c": lambda: nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU),
        "utilization_gpu": lambda: nvml.nvmlDeviceGetUtilizationRates(h).gpu,
        "sm_clock_mhz": lambda: nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_SM),
        "clock_event_reasons": lambda: nvml.nvmlDeviceGetCurrentClocksEventReasons(h),
        "pcie_tx_kbs": lambda: nvml.nvmlDeviceGetPcieThroughput(h, nvml.NVML_PCIE_UTIL_TX_BYTES),
        "ecc_volatile_uncorrected": lambda: nvml.nvmlDeviceGetTotalEccErrors(
            h, nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nvml.NVML_VOLATILE_ECC
        ),
        "remapped_rows": lambda: list(nvml.nvmlDeviceGetRemappedRows(h)),
        "compute_processes": lambda: [p.pid for p in nvml.nvmlDeviceGetComputeRunningProcesses(h)],
        "gpm_supported": lambda: bool(nvml.nvmlGpmQueryDeviceSupport(h).isSupportedDevice),
        "gpm_sm_and_tensor_activity": lambda: gpm_sm_activity(nvml, h),
        "xid_event_registration": lambda: nvml.nvmlDeviceRegisterEvents(
            h, nvml.nvmlEventTypeXidCriticalError, nvml.nvmlEventSetCreate()
        ),
    }
    for name, fn in queries.items():
        out[name] = attempt(fn)
    out["read_proc_1_cgroup"] = attempt(lambda: Path("/proc/1/cgroup").read_text().strip()[:80])
    nvml.nvmlShutdown()
    return out


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--probe":
        print(json.dumps(probe()))
        return 0
    facts: dict[str, Any] = {}
    params = Path("/proc/driver/nvidia/params")
    if params.exists():
        facts["RmProfilingAdminOnly"] = next(
            (line.split(":")[1].strip() for line in params.read_text().splitlines() if "RmProfilingAdminOnly" in line),
            None,
        )
    facts["device_files"] = {p.name: oct(p.stat().st_mode & 0o777) for p in sorted(Path("/dev").glob("nvidia*"))}
    results = {"facts": facts}

    def drop() -> None:
        os.setgroups([])
        os.setgid(UNPRIVILEGED)
        os.setuid(UNPRIVILEGED)

    for label, preexec in (("root", None), ("uid65534_no_capabilities", drop)):
        cmd = [sys.executable, os.path.abspath(__file__), "--probe"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, preexec_fn=preexec, check=False)
        except OSError as exc:  # e.g. the interpreter lives under /root, unreadable for uid 65534
            results[label] = {"error": f"could not start the probe: {exc}"}
            continue
        try:
            results[label] = json.loads(done.stdout)
        except json.JSONDecodeError:
            results[label] = {"exit": done.returncode, "stdout": done.stdout[-2000:], "stderr": done.stderr[-2000:]}
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
