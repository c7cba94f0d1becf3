"""Request limits the real API server enforces before an object reaches validation.

- A request body over 3 MiB is refused with 413 RequestEntityTooLarge, "Request entity too large: limit is
  3145728" (kube-apiserver `--max-request-body-bytes`, default 3 MiB; "API concepts": request size).
- JSON and YAML bodies nested deeper than a limit are refused with 400 BadRequest. The real decoders stop at
  10,000 levels; the sandbox stops at MAX_NESTING_DEPTH, because its decoders, copies, merges and schema walks
  are recursive Python and a body that gets past the decoder must never exhaust the interpreter's stack (which
  would answer 500, or worse). No Kubernetes object a real client writes comes close to either limit.
- YAML whose aliases would expand into more values than a 3 MiB body can hold is refused with 400 ("document
  contains excessive aliasing", as the real YAML decoder says since CVE-2019-11253); so is YAML that refers to
  itself.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from aiohttp import web

from powertrain.sandbox.errors import ApiError, bad_request

MAX_REQUEST_BYTES = 3 * 1024 * 1024
MAX_NESTING_DEPTH = 256
# What a 3 MiB body can hold written out; more can only come from YAML aliases (a 'billion laughs' body).
MAX_EXPANDED_NODES = 2_000_000


def too_large() -> ApiError:
    return ApiError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {MAX_REQUEST_BYTES}")


def too_deep_message() -> str:
    return f"the object could not be decoded: exceeded max depth of {MAX_NESTING_DEPTH} nested objects and arrays"


async def read_body(request: web.Request) -> bytes:
    """The raw body, or 413 when it is over the limit (declared or actually sent)."""
    if request.content_length is not None and request.content_length > MAX_REQUEST_BYTES:
        raise too_large()
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:  # chunked bodies carry no length up front
        raise too_large() from exc
    if len(raw) > MAX_REQUEST_BYTES:
        raise too_large()
    return raw


def decode_body(raw: bytes, ctype: str) -> Any:
    """JSON or YAML to Python values; 400 for what does not parse, nests deeper than MAX_NESTING_DEPTH, or (YAML)
    refers to itself or expands through aliases to more than MAX_EXPANDED_NODES values."""
    yaml_body = "yaml" in ctype
    try:
        value = yaml.safe_load(raw) if yaml_body else json.loads(raw)
    except RecursionError as exc:
        raise bad_request(too_deep_message()) from exc
    except (ValueError, yaml.YAMLError) as exc:
        raise bad_request(f"the body could not be decoded as {ctype or 'JSON'}: {exc}") from exc
    if not yaml_body and raw.count(b"[") + raw.count(b"{") <= MAX_NESTING_DEPTH:
        return value  # not enough brackets to nest too deeply
    depth, nodes = measure(value)
    if depth > MAX_NESTING_DEPTH:
        raise bad_request(too_deep_message())
    if nodes > MAX_EXPANDED_NODES:
        raise bad_request("the body could not be decoded: yaml: document contains excessive aliasing")
    return value


def measure(value: Any) -> tuple[int, int]:
    """(nesting depth, values once YAML aliases are expanded); iterative, and linear in the distinct containers
    (a walk that followed every alias would take exponential time on a "billion laughs" body).

    A container that contains itself (a YAML anchor used inside its own node) is refused with 400."""
    memo: dict[int, tuple[int, int]] = {}
    open_: set[int] = set()
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        kids = list(node.values()) if isinstance(node, dict) else node if isinstance(node, list) else None
        if kids is None or (key in memo and not done):
            continue
        containers = [k for k in kids if isinstance(k, dict | list)]
        if done:
            open_.discard(key)
            depth = 1 + max((memo[id(k)][0] for k in containers), default=0)
            nodes = 1 + len(kids) - len(containers) + sum(memo[id(k)][1] for k in containers)
            memo[key] = (depth, nodes)
            if depth > MAX_NESTING_DEPTH or nodes > MAX_EXPANDED_NODES:
                return depth, nodes  # enough to refuse: no need to measure the rest
            continue
        open_.add(key)
        if len(open_) > MAX_NESTING_DEPTH:
            return len(open_), 0
        stack.append((node, True))
        for k in containers:
            if id(k) in open_:
                raise bad_request("the body could not be decoded: it refers to itself")
            if id(k) not in memo:
                stack.append((k, False))
    return memo.get(id(value), (0, 1))
