#!/usr/bin/env bash
# Runs a command with the pinned Node 24 at hand (deploy/lib/ensure-deps.sh: drover_ensure_node24).
#
#   bash deploy/lib/node24.sh                  prints the path of the Node 24 binary (installs it if missing)
#   bash deploy/lib/node24.sh CMD [ARGS...]    runs CMD with DROVER_NODE24 and DROVER_TEST_NODE set to it,
#                                              so deploy/lib/run-tests.mjs runs the tests on Node 24
#
# e.g. `npm run test:unit:node24` is `bash deploy/lib/node24.sh npm run --silent test:unit`.
# PATH is left alone: npm and the scripts themselves keep running on the system node.
set -euo pipefail
# shellcheck source=ensure-deps.sh
source "$(dirname "${BASH_SOURCE[0]}")/ensure-deps.sh"
drover_ensure_node24
if (($# == 0)); then
  echo "$DROVER_NODE24"
  exit 0
fi
export DROVER_TEST_NODE=$DROVER_NODE24
exec "$@"
