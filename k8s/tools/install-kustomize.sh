#!/usr/bin/env sh
# Install a pinned kustomize into a cache outside the repository and print its path.
#
# The manifest tests render every overlay with the same kustomize version that
# the docs name, so a rendering difference between kustomize releases cannot
# hide behind whatever `kubectl kustomize` happens to be on a machine.
# Built from source through the Go module proxy: needs `go` on PATH.
set -eu

KUSTOMIZE_VERSION="${KUSTOMIZE_VERSION:-v5.8.1}"
CACHE_DIR="${IOT_MONITORING_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/iot-monitoring}"
BIN_DIR="$CACHE_DIR/bin/kustomize-$KUSTOMIZE_VERSION"
BINARY="$BIN_DIR/kustomize"

if [ ! -x "$BINARY" ]; then
    if ! command -v go >/dev/null 2>&1; then
        echo "install-kustomize: go is not on PATH; cannot build kustomize $KUSTOMIZE_VERSION" >&2
        exit 3
    fi
    mkdir -p "$BIN_DIR"
    GOBIN="$BIN_DIR" \
        go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" >&2
fi
echo "$BINARY"
