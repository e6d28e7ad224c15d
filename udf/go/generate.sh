#!/usr/bin/env bash
# Regenerate the Go code of the UDF protocol (messageservice/) from ../MessageService.proto.
# The .proto is kept byte-for-byte as Streaming Runtime published it (no go_package
# option), so the Go package is given here with protoc's M option.
# Needs: grpcio-tools (Python, for protoc), Go. The two plugins are installed at
# pinned versions from the Go module proxy.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
[ -x "$python" ] || python=python3
module="$(cd "$here" && go list -m)"
package="$module/messageservice"

GOBIN="${GOBIN:-$(go env GOPATH)/bin}"
export GOBIN PATH="$GOBIN:$PATH"
go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2

"$python" -m grpc_tools.protoc -I "$here/.." \
  --plugin=protoc-gen-go="$GOBIN/protoc-gen-go" \
  --plugin=protoc-gen-go-grpc="$GOBIN/protoc-gen-go-grpc" \
  --go_out="$here" --go_opt=module="$module" --go_opt=MMessageService.proto="$package" \
  --go-grpc_out="$here" --go-grpc_opt=module="$module" --go-grpc_opt=MMessageService.proto="$package" \
  "$here/../MessageService.proto"
echo "Go code written to $here/messageservice"
