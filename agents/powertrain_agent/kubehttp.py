"""A small blocking Kubernetes REST client for the agent's worker threads: credentials, JSON calls, watches.

Why not the `kubernetes` package: the agent makes a handful of calls (NodeTelemetry get/create/patch, one Node
get, two list+watch streams), and importing that package alone keeps ~36 MiB resident on every GPU node;
the operator's shared transport (powertrain.kubeclient) is asyncio + aiohttp (~23 MiB) for the operator's
thousands of concurrent writes, which the agent never makes. This module uses only the standard library
(http.client, ssl) and PyYAML for kubeconfigs.

Credentials are read the way client-go reads them: in a pod, the service account's token, CA and the
KUBERNETES_SERVICE_HOST/PORT environment; else the kubeconfig's current context (server, CA file or data,
insecure-skip-tls-verify, tls-server-name; the user's token, tokenFile, client certificate and key, basic
auth, or an exec credential plugin). Relative paths are relative to the kubeconfig's own directory.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
SERVICE_TOKEN_FILENAME = SERVICE_ACCOUNT_DIR / "token"
SERVICE_CERT_FILENAME = SERVICE_ACCOUNT_DIR / "ca.crt"


class ConfigError(RuntimeError):
    """The credentials cannot be read or are not supported."""


class ApiError(Exception):
    """A non-2xx answer; `status` 0 means no answer came (connection refused, reset or timed out)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}".strip())
        self.status = status
        self.reason = reason
        self.message = message


def _error(status: int, text: str) -> ApiError:
    reason, message = "", text[:500]
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        reason = str(doc.get("reason") or "")
        message = str(doc.get("message") or message)
    return ApiError(status, reason, message)


@dataclass
class Connection:
    """Where the API server is and how to authenticate to it."""

    host: str  # https://host:port
    headers: dict[str, str] = field(default_factory=dict)
    ssl_context: ssl.SSLContext | None = None
    expires_at: float | None = None  # exec-plugin credentials: run the plugin again after this (epoch s)
    server_name: str | None = None  # tls-server-name: the name the server's certificate is checked against
    files: tuple[Path, ...] = ()  # files the kubeconfig points at (CA, client certificate, token): watched too

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (time.time() if now is None else now) >= self.expires_at


def in_cluster_available(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return bool(env.get("KUBERNETES_SERVICE_HOST") and env.get("KUBERNETES_SERVICE_PORT") and token_file().is_file())


def token_file() -> Path:
    return SERVICE_TOKEN_FILENAME


def load_in_cluster() -> Connection:
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST", ""), os.environ.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise ConfigError("KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT are not set")
    if ":" in host:
        host = f"[{host}]"  # IPv6
    token = SERVICE_TOKEN_FILENAME.read_text().strip()
    if not token:
        raise ConfigError(f"{SERVICE_TOKEN_FILENAME} is empty")
    ctx = ssl.create_default_context(cafile=str(SERVICE_CERT_FILENAME))
    return Connection(f"https://{host}:{port}", {"Authorization": f"Bearer {token}"}, ctx)


def kubeconfig_files(kubeconfig: str | None) -> list[Path]:
    if kubeconfig:
        return [Path(kubeconfig).expanduser()]
    env = os.environ.get("KUBECONFIG", "")
    return [Path(f).expanduser() for f in env.split(os.pathsep) if f] or [Path("~/.kube/config").expanduser()]


def _merged(files: list[Path]) -> tuple[dict[str, Any], dict[str, Path]]:
    """The kubeconfigs merged as kubectl merges them (the first file to set a value or a name wins), and the
    directory each named cluster/user came from (their relative paths are relative to it)."""
    import yaml

    merged: dict[str, Any] = {"clusters": {}, "users": {}, "contexts": {}, "current-context": None}
    origin: dict[str, Path] = {}
    read = 0
    for f in files:
        if not f.is_file():
            continue
        try:
            doc = yaml.safe_load(f.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"kubeconfig {f}: {exc}") from exc
        if not isinstance(doc, dict):
            raise ConfigError(f"kubeconfig {f}: not a mapping")
        read += 1
        if merged["current-context"] is None and doc.get("current-context"):
            merged["current-context"] = doc["current-context"]
        for kind, inner in (("clusters", "cluster"), ("users", "user"), ("contexts", "context")):
            for entry in doc.get(kind) or []:
                if isinstance(entry, dict) and entry.get("name") and entry["name"] not in merged[kind]:
                    merged[kind][entry["name"]] = entry.get(inner) or {}
                    origin[f"{kind}/{entry['name']}"] = f.parent
    if not read:
        raise ConfigError(f"no kubeconfig found at {', '.join(map(str, files))}")
    return merged, origin


def _data_or_file(entry: Mapping[str, Any], key: str, base: Path, used: list[Path]) -> bytes | None:
    data = entry.get(f"{key}-data")
    if data:
        return base64.b64decode(str(data))
    path = entry.get(key)
    if path:
        p = _resolve(path, base)
        used.append(p)
        return p.read_bytes()
    return None


def _resolve(path: object, base: Path) -> Path:
    p = Path(str(path)).expanduser()
    return p if p.is_absolute() else base / p


def load_kubeconfig(files: list[Path]) -> Connection:
    merged, origin = _merged(files)
    name = merged["current-context"]
    if not name or name not in merged["contexts"]:
        raise ConfigError(f"kubeconfig: current-context {name!r} is not among its contexts")
    context = merged["contexts"][name]
    cluster_name, user_name = context.get("cluster"), context.get("user")
    if cluster_name not in merged["clusters"]:
        raise ConfigError(f"kubeconfig: context {name!r} names cluster {cluster_name!r}, which is not defined")
    cluster = merged["clusters"][cluster_name]
    user = merged["users"].get(user_name) or {}
    cluster_dir = origin[f"clusters/{cluster_name}"]
    user_dir = origin.get(f"users/{user_name}", cluster_dir)
    server = str(cluster.get("server") or "")
    if not server:
        raise ConfigError(f"kubeconfig: cluster {cluster_name!r} has no server")

    headers: dict[str, str] = {}
    used: list[Path] = []
    cert = _data_or_file(user, "client-certificate", user_dir, used)
    key = _data_or_file(user, "client-key", user_dir, used)
    expires_at = None
    if user.get("token"):
        headers["Authorization"] = f"Bearer {user['token']}"
    elif user.get("tokenFile"):
        token_path = _resolve(user["tokenFile"], user_dir)
        used.append(token_path)
        headers["Authorization"] = f"Bearer {token_path.read_text().strip()}"
    elif user.get("username") and user.get("password") is not None:
        pair = f"{user['username']}:{user['password']}".encode()
        headers["Authorization"] = f"Basic {base64.b64encode(pair).decode()}"
    elif user.get("exec"):
        token, cert, key, expires_at = _run_exec(user["exec"], cluster, user_dir)
        if token:
            headers["Authorization"] = f"Bearer {token}"
    elif user.get("auth-provider"):
        provider = (user["auth-provider"] or {}).get("name")
        raise ConfigError(
            f"kubeconfig user {user_name!r}: auth-provider {provider!r} is not supported (Kubernetes removed "
            "them); use an exec credential plugin or a token"
        )

    ctx: ssl.SSLContext | None = None
    if server.startswith("https"):
        ca = _data_or_file(cluster, "certificate-authority", cluster_dir, used)
        ctx = ssl.create_default_context(cadata=ca.decode() if ca else None)  # without a CA: the system's
        if cluster.get("insecure-skip-tls-verify"):
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if cert and key:
            _load_cert_chain(ctx, cert, key)
    server_name = str(cluster["tls-server-name"]) if cluster.get("tls-server-name") else None
    return Connection(server.rstrip("/"), headers, ctx, expires_at, server_name, tuple(used))


def _load_cert_chain(ctx: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    # ssl reads client certificates only from files: write them where only this user can read, load, delete.
    with tempfile.TemporaryDirectory(prefix="powertrain-agent-") as tmp:
        c, k = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
        for path, data in ((c, cert), (k, key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
        ctx.load_cert_chain(str(c), str(k))


ExecResult = tuple[str | None, bytes | None, bytes | None, float | None]  # token, cert, key, expiry


def _run_exec(spec: Mapping[str, Any], cluster: Mapping[str, Any], base: Path) -> ExecResult:
    """Run a client-go exec credential plugin; its ExecCredential gives a token or a client certificate."""
    command = str(spec.get("command") or "")
    if not command:
        raise ConfigError("kubeconfig exec: no command")
    if "/" in command and not Path(command).is_absolute():
        command = str(base / command)
    env = dict(os.environ)
    for item in spec.get("env") or []:
        env[str(item.get("name"))] = str(item.get("value"))
    api_version = str(spec.get("apiVersion") or "client.authentication.k8s.io/v1")
    info: dict[str, Any] = {"apiVersion": api_version, "kind": "ExecCredential", "spec": {"interactive": False}}
    if spec.get("provideClusterInfo"):
        info["spec"]["cluster"] = {"server": cluster.get("server")}
    env["KUBERNETES_EXEC_INFO"] = json.dumps(info)
    try:
        done = subprocess.run(
            [command, *map(str, spec.get("args") or [])], env=env, capture_output=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"kubeconfig exec plugin {command}: {exc}") from exc
    if done.returncode != 0:
        raise ConfigError(f"kubeconfig exec plugin {command} exited {done.returncode}: {done.stderr.decode()[:300]}")
    try:
        status = json.loads(done.stdout).get("status") or {}
    except (ValueError, AttributeError) as exc:
        raise ConfigError(f"kubeconfig exec plugin {command}: output is not an ExecCredential") from exc
    expires_at = None
    if status.get("expirationTimestamp"):
        expires_at = datetime.fromisoformat(str(status["expirationTimestamp"]).replace("Z", "+00:00")).timestamp()
    cert, key = status.get("clientCertificateData"), status.get("clientKeyData")
    return (
        status.get("token"),
        str(cert).encode() if cert else None,
        str(key).encode() if key else None,
        expires_at,
    )


class HttpApi:
    """Blocking JSON calls to one API server; one connection per call, so nothing is shared between threads."""

    def __init__(self, conn: Connection, user_agent: str = "powertrain-agent") -> None:
        self.conn = conn
        url = urlsplit(conn.host)
        self._https = url.scheme == "https"
        self._netloc = url.netloc
        self._prefix = url.path.rstrip("/")
        self._headers = {"Accept": "application/json", "User-Agent": user_agent, **conn.headers}

    @property
    def token(self) -> str | None:
        auth = self._headers.get("Authorization", "")
        return auth[7:] if auth.startswith("Bearer ") else None

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        if self._https:
            return _Https(self._netloc, timeout=timeout, context=self.conn.ssl_context, name=self.conn.server_name)
        return http.client.HTTPConnection(self._netloc, timeout=timeout)

    def _send(
        self, method: str, path: str, body: Any, params: Mapping[str, str] | None, content_type: str, timeout: float
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        url = self._prefix + path + (("?" + urlencode(params)) if params else "")
        data = json.dumps(body).encode() if body is not None else None
        headers = dict(self._headers)
        if data is not None:
            headers["Content-Type"] = content_type
        c = self._connect(timeout)
        try:
            c.request(method, url, body=data, headers=headers)
            resp = c.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            c.close()
            raise ApiError(0, "ConnectionError", str(exc) or type(exc).__name__) from exc
        if resp.status >= 300:
            try:
                text = resp.read().decode(errors="replace")
            except (OSError, http.client.HTTPException):
                text = ""
            c.close()
            raise _error(resp.status, text)
        return c, resp

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        timeout: float = 15.0,
    ) -> dict[str, Any]:
        c, resp = self._send(method, path, body, params, content_type, timeout)
        try:
            text = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise ApiError(0, "ConnectionError", str(exc) or type(exc).__name__) from exc
        finally:
            c.close()
        out = json.loads(text) if text else {}
        return out if isinstance(out, dict) else {"items": out}

    def watch(self, path: str, params: Mapping[str, str], timeout: float) -> Iterator[dict[str, Any]]:
        """Watch events ({type, object}) until the server ends the stream; `timeout` bounds each read."""
        c, resp = self._send("GET", path, None, {**params, "watch": "true"}, "", timeout)
        try:
            while True:
                line = resp.readline()
                if not line:
                    return
                if line.strip():
                    event = json.loads(line)
                    if isinstance(event, dict):
                        yield event
        finally:
            c.close()


class _Https(http.client.HTTPSConnection):
    """HTTPS that checks the certificate against `name` (tls-server-name) instead of the host when given."""

    def __init__(self, netloc: str, *, timeout: float, context: ssl.SSLContext | None, name: str | None) -> None:
        super().__init__(netloc, timeout=timeout, context=context)
        self._name = name
        self._ctx = context or ssl.create_default_context()

    def connect(self) -> None:
        if self._name is None:
            super().connect()
            return
        http.client.HTTPConnection.connect(self)
        self.sock = self._ctx.wrap_socket(self.sock, server_hostname=self._name)


def path(group: str, version: str, plural: str, name: str | None = None, sub: str | None = None) -> str:
    out = f"/api/{version}/{plural}" if not group else f"/apis/{group}/{version}/{plural}"
    if name is not None:
        out += f"/{quote(name)}"
    if sub is not None:
        out += f"/{sub}"
    return out
