"""The kopf shell: kopf watch events keep the operator's cluster view current; one serialized scheduling pass
runs powertrain.core over it and applies the decisions through the API."""
