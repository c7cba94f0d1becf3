"""The README's tour, run literally: every command of its `<!-- tour -->` block, in order, in one shell.

It runs in a copy of the repository (what a fresh clone has, nothing beside it) sharing this test run's .venv,
with the real kubectl against the sandbox the tour starts itself.
"""

from __future__ import annotations

import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
MARKER = "<!-- tour -->"
RC = "__tour_rc__="
COMMAND_TIMEOUT_S = 300.0
NOT_A_CLONE = (".venv", ".git", ".sandbox", ".tools", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache")
NOT_A_CLONE += (".hypothesis", "build", "dist", "*.egg-info", "operator.log")


def tour_commands(readme: str) -> list[str]:
    """The shell commands of the fenced block after the tour marker, one per line (`\\` continues a line)."""
    lines = readme.split(MARKER, 1)[1].lstrip().splitlines()
    assert lines[0].startswith("```"), f"{MARKER} must be followed by a fenced block"
    commands: list[str] = []
    pending = ""
    for line in lines[1:]:
        if line.startswith("```"):
            break
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        if (pending + line).strip():
            commands.append((pending + line).strip())
        pending = ""
    return commands


def test_tour_block_is_found_and_split_into_commands() -> None:
    readme = f"intro\n{MARKER}\n```sh\nmake venv\nkubectl get \\\n    tj  # a comment\n\n```\nkubectl not this\n"
    assert tour_commands(readme) == ["make venv", "kubectl get      tj  # a comment"]


class Shell:
    """One bash process fed one command at a time; each command's output and exit status come back."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def run(self, command: str) -> tuple[int, str]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{command}\nprintf '\\n{RC}%s\\n' \"$?\"\n")
        self.proc.stdin.flush()
        out: list[str] = []
        while True:
            try:
                line = self.lines.get(timeout=COMMAND_TIMEOUT_S)
            except queue.Empty:
                took = f"{command!r} did not finish in {COMMAND_TIMEOUT_S:.0f} s"
                raise AssertionError(f"{took}:\n{''.join(out)}") from None
            if line is None:
                raise AssertionError(f"the shell exited during {command!r}:\n{''.join(out)}")
            if line.startswith(RC):
                return int(line.removeprefix(RC)), "".join(out).rstrip("\n")
            out.append(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.write("kill $(jobs -p) 2>/dev/null; exit 0\n")  # a background operator left running
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()


def tail(clone: Path) -> str:
    log = clone / "operator.log"
    return log.read_text(errors="replace")[-3000:] if log.exists() else "(none)"


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return True
    return False


@pytest.fixture
def clone(tmp_path: Path) -> Iterator[Path]:
    """A copy of the repository with this run's .venv linked in, so `make venv` finds it current."""
    venv = Path(sys.prefix)
    if not (venv / ".installed-stamp").exists():
        pytest.skip(f"the tour runs with the project's .venv (make venv / make test); {venv} is not one")
    dest = tmp_path / "powertrain"
    shutil.copytree(REPO, dest, symlinks=True, ignore=shutil.ignore_patterns(*NOT_A_CLONE))  # keeps mtimes
    (dest / ".venv").symlink_to(venv)
    # `make venv` in the copy must not reinstall the shared .venv into the copy (it would point at tmp_path).
    stale = subprocess.run(["make", "-q", "venv"], cwd=dest, capture_output=True, check=False)
    if stale.returncode != 0:
        pytest.fail(f"{venv} is older than pyproject.toml: run `make venv` first")
    yield dest
    subprocess.run(
        [str(venv / "bin" / "powertrain"), "sandbox", "down", "--state-dir", str(dest / ".sandbox")],
        capture_output=True,
        check=False,
        timeout=60,
    )


@pytest.mark.timeout(900)
def test_every_command_of_the_readme_tour_succeeds(clone: Path, tmp_path: Path, kubectl_binary: str) -> None:
    commands = tour_commands((clone / "README.md").read_text())
    assert any(c.startswith("powertrain sandbox up") for c in commands), "the tour starts the sandbox itself"
    assert any(c.startswith("powertrain operator") for c in commands), "the tour starts the operator itself"
    busy = [p for p in (8080, 8081) if port_in_use(p)]
    if busy:
        pytest.skip(f"the tour's operator listens on its default ports, in use here: {busy}")
    home = tmp_path / "home"  # kubectl's discovery cache, private to this run
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "POWERTRAIN_SANDBOX_DIR", "VIRTUAL_ENV")}
    env |= {"HOME": str(home), "PATH": f"{Path(kubectl_binary).parent}:{env.get('PATH', '/usr/bin:/bin')}"}
    shell = Shell(clone, env)
    outputs: dict[str, str] = {}
    try:
        for command in commands:
            rc, out = shell.run(command)
            print(f"$ {command}\n{out}")  # the transcript, shown when the test fails
            assert rc == 0, f"README tour: {command!r} exited {rc}:\n{out}\n--- operator.log ---\n{tail(clone)}"
            outputs[command] = out
    finally:
        shell.close()
    assert len(outputs) == len(commands)
    got = next(out for c, out in outputs.items() if c.startswith("kubectl get tj"))
    row = next(line.split() for line in got.splitlines() if line.startswith("llm-pretrain"))
    assert row[1] in ("Running", "Succeeded"), got
    scaled = next(out for c, out in outputs.items() if c.startswith("kubectl scale"))
    assert "trainingjob.powertrain.dev/llm-pretrain scaled" in scaled
    stopped = outputs[commands[-1]]
    assert "Stopped the sandbox" in stopped
    assert not (clone / ".sandbox" / "state.json").exists()
