"""The kopf operator: thin handlers over pure builders and the engine."""
