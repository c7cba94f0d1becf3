"""How long a job runs on a given placement.

The trace gives two measured points per job (Gavel's isolated V100 throughputs, `throughputs.csv`): all GPUs
in one server (packed) and one GPU per server (spread). E.g. 8 GPUs of Transformer (batch 128): 30.9 steps/s
packed vs 13.0 spread; LM (batch 20): 497 vs 59; ResNet-50 (batch 128): 10.3 vs 13.9 (spread is faster).

Between the two we interpolate the *time per step* linearly in the fraction of ring all-reduce hops that cross
a server boundary: with g workers on k servers, ranks consecutive (as the core places them), k of the g ring
hops leave a server (none when k = 1). So k = 1 gives the packed duration, k = g the spread one, and e.g. an
8-GPU job on 2 servers gets packed + 2/8 × (spread − packed). Racks and spines are not modelled (the data
has no cross-rack measurement), so topology beyond the server does not change run time here.
"""

from __future__ import annotations

from powertrain.sim.trace import TraceJob


def cross_server_fraction(gpus: int, servers: int) -> float:
    if gpus <= 1 or servers <= 1:
        return 0.0
    return min(servers, gpus) / gpus


def run_seconds(job: TraceJob, servers: int) -> float:
    """Run time of `job` with its GPUs on `servers` distinct nodes."""
    fraction = cross_server_fraction(job.gpus, servers)
    if fraction == 0.0:
        return job.packed_s
    return job.packed_s + (job.spread_s - job.packed_s) * fraction
