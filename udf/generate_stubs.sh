#!/usr/bin/env bash
# Regenerate the Python gRPC stubs in udf/protocol/ from udf/MessageService.proto.
# The .proto is the Streaming Runtime's UDF protocol, byte for byte; the stubs
# are committed so that installing the package needs no code generation.
# Usage: udf/generate_stubs.sh   (needs grpcio-tools; uses $PYTHON or .venv/bin/python)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
python="${PYTHON:-$root/.venv/bin/python}"
[ -x "$python" ] || python=python3

out="$here/protocol"
mkdir -p "$out"
"$python" -m grpc_tools.protoc -I "$here" \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
  "$here/MessageService.proto"
# protoc writes a top-level import; make it relative so the stubs import as udf.protocol.*
sed -i 's/^import MessageService_pb2 as /from . import MessageService_pb2 as /' "$out/MessageService_pb2_grpc.py"
echo "stubs written to $out"
