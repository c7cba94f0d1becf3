"""Kubeflow jobs → TrainingJob: the translation behind `powertrain convert`.

Pure functions over parsed YAML: a Kubeflow Training Operator `PyTorchJob` (kubeflow.org/v1) or a Kubeflow
Trainer v2 `TrainJob` (trainer.kubeflow.org/v1alpha1) becomes the wire form of the equivalent TrainingJob, plus
one note per field that could not be carried over, saying why. Priority class values are looked up by the
caller (cluster or flags) and passed in; nothing here does I/O.
"""

from powertrain.kubeflow.common import Conversion, ConvertError, Note, PriorityLookup
from powertrain.kubeflow.convert import convert_document

__all__ = ["Conversion", "ConvertError", "Note", "PriorityLookup", "convert_document"]
