"""Trace replay over powertrain.core (no Kubernetes)."""
