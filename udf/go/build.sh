#!/usr/bin/env bash
# Build the Go UDF into udf/go/bin/udf-uppercase (bin/ is not versioned).
# Dependencies come from the Go module proxy into the module cache.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
export GOFLAGS="${GOFLAGS:--mod=mod}"
mkdir -p bin
go build -o bin/udf-uppercase ./cmd/udf-uppercase
echo "$here/bin/udf-uppercase"
