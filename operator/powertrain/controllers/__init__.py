"""The kopf shell: kopf indexes keep the snapshot current; decisions from powertrain.core are applied via the API."""
