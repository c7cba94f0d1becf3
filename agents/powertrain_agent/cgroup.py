"""Find the pod a process belongs to from /proc/PID/cgroup (cgroup v1 and v2, cgroupfs and systemd drivers).

Examples the parser handles:
  v1 cgroupfs: 11:memory:/kubepods/burstable/pod0a1b2c3d-.../<container id>
  v2 systemd:  0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0a1b2c3d_....slice/
               cri-containerd-<id>.scope
  not a pod:   0::/process_api/d0cc55e8ba47d35ffcef61b577ff4775   (the recorded H200 sample: a plain container)
"""

from __future__ import annotations

import re
from pathlib import Path

# The systemd driver writes the UID with underscores, cgroupfs with dashes.
_POD_UID = re.compile(r"pod([0-9a-fA-F]{8}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{12})")


def pod_uid_from_cgroup(text: str) -> str | None:
    """The pod UID in a /proc/PID/cgroup file's text, or None for a process outside any pod."""
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3 or "kubepods" not in parts[2]:
            continue
        match = _POD_UID.search(parts[2])
        if match:
            return match.group(1).replace("_", "-").lower()
    return None


def pod_uid_of_pid(pid: int, proc_root: Path = Path("/proc")) -> str | None:
    """The pod UID of a host PID; None when the process is gone, unreadable or not in a pod."""
    try:
        text = (proc_root / str(pid) / "cgroup").read_text()
    except OSError:
        return None
    return pod_uid_from_cgroup(text)
