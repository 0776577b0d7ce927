#!/usr/bin/env bash
# `npm test` (and CI through .ci/run): makes the machine ready (deploy/lib/ensure-deps.sh), then runs, in order,
#   npm run proto:check → npm run lint → npm run build → npm run test:unit → npm run test:integration
# and stops at the first failure with its exit status. Whatever happens, it finally removes the containers
# the tests left behind, and only those: testcontainers' containers of Drover's tests (labels
# org.testcontainers=true and drover.test) and the task containers of the harness's agents (label
# drover.test.cluster, which only integration-tests/src/harness sets).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=lib/ensure-deps.sh
source deploy/lib/ensure-deps.sh

export TESTCONTAINERS_RYUK_DISABLED=true
export TESTCONTAINERS_HOST_OVERRIDE=localhost
unset DOCKER_HOST

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

step() {
  local started=$SECONDS
  drover_log "== npm run $1"
  npm run --silent "$1" || {
    local rc=$?
    drover_log "npm run $1 failed (exit status $rc)"
    exit "$rc"
  }
  drover_log "== npm run $1 passed ($((SECONDS - started)) s)"
}

step proto:check
step lint
step build
step test:unit
step test:integration
drover_log "all checks passed"
