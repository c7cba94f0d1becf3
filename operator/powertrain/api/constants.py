"""Names every component relies on (the fixed contracts of DESIGN.md): one place, imported everywhere."""

from typing import Final

GROUP: Final = "powertrain.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"

GPU_RESOURCE: Final = "nvidia.com/gpu"
GPU_PRODUCT_LABEL: Final = "nvidia.com/gpu.product"
GPU_COUNT_LABEL: Final = "nvidia.com/gpu.count"

HOSTNAME_LABEL: Final = "kubernetes.io/hostname"
NVLINK_DOMAIN_LABEL: Final = "accelerator.topograph.run/domain"
NVLINK_CLIQUE_LABEL: Final = "nvidia.com/gpu.clique"
RACK_LABEL: Final = "fabric.topograph.run/tier-0"
SPINE_LABEL: Final = "fabric.topograph.run/tier-1"
ZONE_LABEL: Final = "topology.kubernetes.io/zone"

# Labels the operator puts on everything it creates for a TrainingJob, so selectors and cleanup are exact.
JOB_NAME_LABEL: Final = f"{GROUP}/job-name"
REPLICA_INDEX_LABEL: Final = f"{GROUP}/replica-index"
GANG_GENERATION_LABEL: Final = f"{GROUP}/gang-generation"

SCHEDULER_NAME: Final = "powertrain"

# Worker environment, exactly as Kubeflow's PyTorchJob/Trainer sets it, so existing scripts run unchanged.
ENV_MASTER_ADDR: Final = "MASTER_ADDR"
ENV_MASTER_PORT: Final = "MASTER_PORT"
ENV_WORLD_SIZE: Final = "WORLD_SIZE"
ENV_RANK: Final = "RANK"
ENV_PET_NNODES: Final = "PET_NNODES"
ENV_PET_NPROC_PER_NODE: Final = "PET_NPROC_PER_NODE"
ENV_PET_NODE_RANK: Final = "PET_NODE_RANK"
ENV_PET_MASTER_ADDR: Final = "PET_MASTER_ADDR"
ENV_PET_MASTER_PORT: Final = "PET_MASTER_PORT"
ENV_PET_RDZV_BACKEND: Final = "PET_RDZV_BACKEND"
ENV_PET_RDZV_ENDPOINT: Final = "PET_RDZV_ENDPOINT"
ENV_PET_RDZV_ID: Final = "PET_RDZV_ID"
ENV_PET_MAX_RESTARTS: Final = "PET_MAX_RESTARTS"
