"""Request limits the real API server enforces before an object reaches validation.

- A request body over 3 MiB is refused with 413 RequestEntityTooLarge, "Request entity too large: limit is
  3145728" (kube-apiserver `--max-request-body-bytes`, default 3 MiB; "API concepts": request size).
- JSON and YAML bodies nested deeper than a limit are refused with 400 BadRequest. The real decoders stop at
  10,000 levels; the sandbox stops at MAX_NESTING_DEPTH, because its decoders, copies, merges and schema walks
  are recursive Python and a body that gets past the decoder must never exhaust the interpreter's stack (which
  would answer 500, or worse). No Kubernetes object a real client writes comes close to either limit.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from aiohttp import web

from powertrain.sandbox.errors import ApiError, bad_request

MAX_REQUEST_BYTES = 3 * 1024 * 1024
MAX_NESTING_DEPTH = 256


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
    """JSON or YAML to Python values; 400 for what does not parse or nests deeper than MAX_NESTING_DEPTH."""
    try:
        value = yaml.safe_load(raw) if "yaml" in ctype else json.loads(raw)
    except RecursionError as exc:
        raise bad_request(too_deep_message()) from exc
    except (ValueError, yaml.YAMLError) as exc:
        raise bad_request(f"the body could not be decoded as {ctype or 'JSON'}: {exc}") from exc
    if nesting_depth(value) > MAX_NESTING_DEPTH:
        raise bad_request(too_deep_message())
    return value


def nesting_depth(value: Any) -> int:
    """How many dicts and lists deep `value` goes; iterative, so any depth can be measured."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if depth > MAX_NESTING_DEPTH:
            return depth  # deep enough to refuse: no need to walk the rest
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return deepest
