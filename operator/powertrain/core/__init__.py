"""Pure scheduling core: placement, queueing, lifecycle, power, autoscaling and rescheduling decisions over an
in-memory cluster snapshot. No kopf, no Kubernetes client, no I/O, no clocks (time is an argument)."""
