"""The project's image, built with buildah for the local cluster (no registry, no daemon).

- store: what local image storage holds (`buildah inspect`), for the build and the node runner
- base: a Debian root filesystem made by mmdebstrap, cached outside the repo, as a local image
- build: `make image` (`python -m harness.image`): the Dockerfile built FROM that base
"""
