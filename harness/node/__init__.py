"""The local node: the kubelet's part, played by host processes under bubblewrap.

- runner: watches unscheduled pods, one worker per pod (`python -m harness.node.runner`)
- pod: one pod's worker, which runs its first container, restarts it, reports its status
- env: the container's environment and argv, as the kubelet builds them
- volumes: the pod's volumes as host paths
- refs: what a pod refers to in the API (Secrets, ConfigMaps, its own fields, tokens)
- status: pods/status documents as the kubelet reports them
- sandbox: the bubblewrap argv (the pod's own mount, PID, IPC and UTS namespaces)
- dirs: where the runner keeps pods' files under its state directory
"""
