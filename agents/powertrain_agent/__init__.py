"""Powertrain node agent: GPU and network telemetry, Prometheus exporter, power-cap actuator."""

from powertrain import __version__

__all__ = ["__version__"]
