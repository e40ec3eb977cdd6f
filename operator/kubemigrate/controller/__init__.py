"""The kopf operator: thin handlers over state machines, pure builders and the engine.

``main`` holds every kopf handler; ``daemons`` runs one loop per object over its flow in
``flows/``; ``runtime`` is the state the handlers share; ``build/`` makes manifests and status
without I/O; ``ordering/`` decides whose turn it is; ``kube/`` is the only door to the
Kubernetes API; ``metrics`` is what Prometheus scrapes.
"""
