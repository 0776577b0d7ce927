#!/usr/bin/env bash
# Generates libs/proto/src/gen from proto/drover/v1/*.proto with ts-proto for @grpc/grpc-js.
# With --check, generates into a temporary directory and fails if the committed code differs.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc >/dev/null || { echo "protoc missing: apt-get install -y protobuf-compiler" >&2; exit 1; }
out=libs/proto/src/gen
target=$out
if [[ "${1:-}" == "--check" ]]; then target=$(mktemp -d); fi
rm -rf "$target" && mkdir -p "$target"
protoc \
  --plugin=protoc-gen-ts_proto=./node_modules/.bin/protoc-gen-ts_proto \
  --ts_proto_out="$target" \
  --ts_proto_opt=outputServices=grpc-js,esModuleInterop=true,importSuffix=.js,env=node,useOptionals=messages,forceLong=number,oneof=unions-value,useDate=false \
  -I proto proto/drover/v1/*.proto
if [[ "${1:-}" == "--check" ]]; then
  if ! diff -r "$out" "$target"; then
    echo "generated proto code is out of date: run 'npm run proto' and commit" >&2
    exit 1
  fi
  rm -rf "$target"
  echo "proto: generated code matches"
fi
