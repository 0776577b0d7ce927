#!/usr/bin/env bash
# Builds the local images Drover's tests and local cluster use. No registry is needed:
#   drover/etcd:3.4      FROM scratch: Debian's etcd binary and the libc it links
#   drover/nats:2.9      FROM scratch: Debian's nats-server binary and the libc it links
#   drover/busybox:1     a static busybox imported as an image (a task image with a shell)
#   drover/standin:1     FROM scratch: every busybox applet, the host's node and the libraries it links, and
#                        deploy/images/standin/standin.mjs, a server that answers HTTP, HTTPS (self-signed test
#                        certificate) and TCP on the ports it is told: a stand-in for the registry images of
#                        Marathon app definitions (integration-tests/src/marathon-corpus-run.test.ts)
# Idempotent: an image that already exists is kept unless --force is given (drover/standin:1 is also rebuilt
# when its inputs changed: standin.mjs, the host's node version).
set -euo pipefail
docker_bin=${DOCKER:-/usr/bin/docker}
[[ -x $docker_bin ]] || docker_bin=docker
force=${1:-}
have() { [[ $force != --force ]] && "$docker_bin" image inspect "$1" >/dev/null 2>&1; }

scratch_image() { # name binary entrypoint-args...
  local name=$1 bin=$2; shift 2
  have "$name" && return 0
  local ctx; ctx=$(mktemp -d)
  mkdir -p "$ctx/bin" "$ctx/lib" "$ctx/lib64" "$ctx/tmp" "$ctx/data"
  cp "$(command -v "$bin")" "$ctx/bin/"
  # shellcheck disable=SC2046
  for lib in $(ldd "$(command -v "$bin")" | grep -o '/[^ ]*\.so[^ ]*'); do
    mkdir -p "$ctx$(dirname "$lib")"; cp -L "$lib" "$ctx$lib"
  done
  local entry; entry=$(printf '"%s",' "/bin/$(basename "$bin")" "$@"); entry="[${entry%,}]"
  cat > "$ctx/Dockerfile" <<DOCKERFILE
FROM scratch
COPY . /
ENTRYPOINT $entry
DOCKERFILE
  "$docker_bin" build -q -t "$name" "$ctx" >/dev/null
  rm -rf "$ctx"
  echo "built $name"
}

scratch_image drover/etcd:3.4 etcd
scratch_image drover/nats:2.9 nats-server

if ! have drover/busybox:1; then
  ctx=$(mktemp -d)
  mkdir -p "$ctx/bin" "$ctx/tmp" "$ctx/etc"
  cp /bin/busybox "$ctx/bin/busybox"
  for applet in sh sleep echo cat ls env true false kill ps date wc head tail grep nc httpd; do
    ln -sf busybox "$ctx/bin/$applet"
  done
  echo "root:x:0:0:root:/:/bin/sh" > "$ctx/etc/passwd"
  tar -C "$ctx" -c . | "$docker_bin" import -c 'CMD ["/bin/sh"]' -c 'ENV PATH=/bin' - drover/busybox:1 >/dev/null
  rm -rf "$ctx"
  echo "built drover/busybox:1"
fi

# drover/standin:1. Its inputs' hash is a label: a changed standin.mjs or another host node rebuilds it.
standin_src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/standin
node_bin=$(command -v node) || {
  echo "drover/standin:1 needs the host's node on PATH (it is copied into the image)" >&2
  exit 1
}
standin_hash=$({ cat "$standin_src/standin.mjs"; "$node_bin" --version; sed -n '/^# drover\/standin:1\./,$p' "${BASH_SOURCE[0]}"; } |
  sha256sum | cut -c1-16)
if [[ $force == --force ]] ||
  [[ $("$docker_bin" image inspect -f '{{index .Config.Labels "drover.standin.hash"}}' drover/standin:1 2>/dev/null) != "$standin_hash" ]]; then
  ctx=$(mktemp -d)
  mkdir -p "$ctx/bin" "$ctx/tmp" "$ctx/etc" "$ctx/standin"
  cp /bin/busybox "$ctx/bin/busybox"
  for applet in $(/bin/busybox --list); do [[ -e $ctx/bin/$applet ]] || ln -s busybox "$ctx/bin/$applet"; done
  cp "$node_bin" "$ctx/bin/node"
  for lib in $(ldd "$node_bin" | grep -o '/[^ ]*\.so[^ ]*'); do
    mkdir -p "$ctx$(dirname "$lib")"; cp -L "$lib" "$ctx$lib"
  done
  cp "$standin_src/standin.mjs" "$ctx/standin/"
  if command -v openssl >/dev/null 2>&1; then # a fresh self-signed pair for this image (tests only)
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=drover-standin TEST ONLY" \
      -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
      -keyout "$ctx/standin/key.pem" -out "$ctx/standin/cert.pem" >/dev/null 2>&1
  else # the committed test-only pair
    cp "$standin_src/test-only-cert.pem" "$ctx/standin/cert.pem"
    cp "$standin_src/test-only-key.pem" "$ctx/standin/key.pem"
  fi
  printf '#!/bin/sh\nexec /bin/node /standin/standin.mjs "$@"\n' > "$ctx/bin/standin"
  chmod 755 "$ctx/bin/standin"
  chmod 644 "$ctx/standin/key.pem"
  echo "root:x:0:0:root:/:/bin/sh" > "$ctx/etc/passwd"
  chmod 1777 "$ctx/tmp"
  printf 'Dockerfile\n.dockerignore\n' > "$ctx/.dockerignore"
  cat > "$ctx/Dockerfile" <<DOCKERFILE
FROM scratch
COPY . /
ENV PATH=/bin
LABEL drover.standin.hash=$standin_hash
CMD ["/bin/standin"]
DOCKERFILE
  "$docker_bin" build -q -t drover/standin:1 "$ctx" >/dev/null
  rm -rf "$ctx"
  echo "built drover/standin:1"
fi
