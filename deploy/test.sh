#!/usr/bin/env bash
# `npm test` (and CI through .ci/run): makes the machine ready (deploy/lib/ensure-deps.sh, plus the pinned
# Node 24 of drover_ensure_node24), then runs, in order,
#   npm run proto:check → npm run lint → npm run build → npm run test:unit (system node, 20)
#   → npm run test:unit again on Node 24 → npm run test:integration
# and stops at the first failure with its exit status. The tests run through deploy/lib/run-tests.mjs, which
# fails when it finds no test file or node reports zero tests run. Whatever happens, it finally removes the
# containers the tests left behind, and only those: testcontainers' containers of Drover's tests (labels
# org.testcontainers=true and drover.test) and the task containers of the harness's agents (label
# drover.test.cluster, which only integration-tests/src/harness sets).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=lib/ensure-deps.sh
source deploy/lib/ensure-deps.sh

export TESTCONTAINERS_RYUK_DISABLED=true
export TESTCONTAINERS_HOST_OVERRIDE=localhost
unset DOCKER_HOST
unset DROVER_TEST_NODE # the steps run on the system node unless they say otherwise

remove_test_containers() {
  local rc=$? ids
  ids=$(
    {
      "$DROVER_DOCKER" ps -aq --filter label=org.testcontainers=true --filter label=drover.test
      "$DROVER_DOCKER" ps -aq --filter label=drover.test.cluster
    } 2>/dev/null | sort -u
  ) || true
  if [[ -n $ids ]]; then
    drover_log "removing $(wc -w <<<"$ids") leftover test container(s)"
    # shellcheck disable=SC2086 # one id per word
    "$DROVER_DOCKER" rm -f $ids >/dev/null 2>&1 || drover_log "could not remove some test containers"
  fi
  exit "$rc"
}
trap remove_test_containers EXIT

# The build is a step of its own below, after proto:check and lint.
drover_ensure_deps --no-build
drover_ensure_node24

# step SCRIPT [LABEL [NAME=VALUE...]]: npm run SCRIPT, with the given environment added.
step() {
  local script=$1 label="npm run ${2:-$1}" started=$SECONDS
  shift $(($# < 2 ? $# : 2))
  drover_log "== $label"
  env "$@" npm run --silent "$script" || {
    local rc=$?
    drover_log "$label failed (exit status $rc)"
    exit "$rc"
  }
  drover_log "== $label passed ($((SECONDS - started)) s)"
}

step proto:check
step lint
step build
step test:unit "test:unit (node $(node --version))"
step test:unit "test:unit (node 24: $("$DROVER_NODE24" --version))" DROVER_TEST_NODE="$DROVER_NODE24"
step test:integration
drover_log "all checks passed"
