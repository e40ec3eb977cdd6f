#!/usr/bin/env bash
# Builds the local control plane (etcd, kube-apiserver, kube-controller-manager, kubectl), helm,
# and the node runner's runas (cmd/runas) from Go modules into a cache outside the repo, keyed by
# version. Builds only what is
# missing, so a warm run costs nothing. Prints the directory holding the binaries.
#
# To change the Kubernetes release, regenerate go.mod's replace list (a consumer of
# k8s.io/kubernetes must pin every staging module it requires at v0.0.0):
#   K8S=1.x.y; MOD=$(go mod download -json k8s.io/kubernetes@v$K8S | jq -r .GoMod)
#   for m in $(awk '$1 ~ /^k8s\.io\// && $2=="v0.0.0" {print $1}' "$MOD"); do
#     go mod edit -replace=$m=$m@v0.${K8S#1.}; done
#   go mod edit -require=k8s.io/kubernetes@v$K8S && go mod tidy
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
K8S_VERSION=$(awk '$1=="k8s.io/kubernetes" {print substr($2,2)}' "$here/go.mod" | head -n1)
HELM_VERSION=${HELM_VERSION:-3.22.0}
cache=${KUBEMIGRATE_CACHE:-$HOME/.cache/kubemigrate}
bin="$cache/bin/k8s-v$K8S_VERSION-helm-v$HELM_VERSION"
mkdir -p "$bin"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
minor=$(echo "$K8S_VERSION" | cut -d. -f2)
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"

build() { # name package [dir]
  local name=$1 pkg=$2
  if [ -x "$bin/$name" ]; then return 0; fi
  echo "building $name ($pkg) ..." >&2
  (cd "$here" && go build -trimpath -ldflags "$ldflags" -o "$bin/$name.tmp" "$pkg")
  mv "$bin/$name.tmp" "$bin/$name"
}
build etcd ./cmd/etcd
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
build kubectl k8s.io/kubernetes/cmd/kubectl
# runas changes with the repository, not with a release: keyed by its source's hash (the node
# runner computes the same name, harness/node/helper.py).
build "runas-$(sha256sum "$here/cmd/runas/main.go" | cut -c1-12)" ./cmd/runas
if [ ! -x "$bin/helm" ]; then
  echo "building helm v$HELM_VERSION ..." >&2
  tmp=$(mktemp -d)
  GOBIN="$tmp" go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
    "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION"
  mv "$tmp/helm" "$bin/helm"; rmdir "$tmp"
fi
echo "$bin"
