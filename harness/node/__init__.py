"""The local node: the kubelet's part, played by sandboxed processes run from pods' images.

- runner: watches unscheduled pods, one worker per pod (`python -m harness.node.runner`)
- pod: one pod's worker: init containers, then its first container, restarts, its status
- launch: what one container start takes, from its image (or as a host process, when asked)
- process: one run of a container's sandbox: start, stop, exit code, termination message
- env: the container's environment and argv, as the kubelet and its runtime build them
- identity: the uid, gids and privileges the container's process gets
- volumes: the pod's volumes as host paths
- refs: what a pod refers to in the API (Secrets, ConfigMaps, its own fields, tokens)
- status: pods/status documents as the kubelet reports them
- rootfs: images' files, unpacked once per image ID; rootpath: paths inside them
- image_sandbox: the overlay root and bubblewrap argv of a container run from its image
- sandbox: the bubblewrap argv of a host-process container (host mode); the Mount type
- dirs: where the runner keeps pods' files under its state directory
"""
