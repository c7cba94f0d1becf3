"""A local Kubernetes-API-compatible server with simulated GPU nodes, kubelet and default scheduler."""
