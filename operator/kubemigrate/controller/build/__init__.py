"""Pure builders: Jobs, ConfigMaps, child resources, status and conditions.

No I/O and no clock of their own beyond a timestamp argument: each is a function of its inputs,
so the manifests and status the operator writes are tested without a cluster.
"""
