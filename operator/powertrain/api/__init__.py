"""Powertrain API (group powertrain.dev, version v1alpha1): pydantic models are the single source of truth.

CRDs in `crds/`, the chart, docs and examples all derive from these models.
"""

from powertrain.api.common import CelRule, Condition
from powertrain.api.constants import API_VERSION, GROUP, VERSION
from powertrain.api.policy import (
    DEFAULT_POLICY_NAME,
    ClusterTrainingPolicy,
    ClusterTrainingPolicySpec,
    QueueSpec,
    TopologyLevelSpec,
)
from powertrain.api.telemetry import GpuReading, NetworkReading, NodeTelemetry, NodeTelemetrySpec, NodeTelemetryStatus
from powertrain.api.trainingjob import (
    TOPOLOGY_ORDER,
    Phase,
    PowerMode,
    TopologyLevel,
    TopologyMode,
    TrainingJob,
    TrainingJobSpec,
    TrainingJobStatus,
)
from powertrain.api.validation import FieldError, InvalidObject, parse

__all__ = [
    "API_VERSION",
    "DEFAULT_POLICY_NAME",
    "GROUP",
    "TOPOLOGY_ORDER",
    "VERSION",
    "CelRule",
    "ClusterTrainingPolicy",
    "ClusterTrainingPolicySpec",
    "Condition",
    "FieldError",
    "GpuReading",
    "InvalidObject",
    "NetworkReading",
    "NodeTelemetry",
    "NodeTelemetrySpec",
    "NodeTelemetryStatus",
    "Phase",
    "PowerMode",
    "QueueSpec",
    "TopologyLevel",
    "TopologyLevelSpec",
    "TopologyMode",
    "TrainingJob",
    "TrainingJobSpec",
    "TrainingJobStatus",
    "parse",
]
