"""End-to-end tests: real processes (powertrain, kubectl, kopf) against the sandbox cluster."""

from __future__ import annotations

pytest_plugins = ["powertrain.sandbox.testing"]
