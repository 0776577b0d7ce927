#!/usr/bin/env bash
# Builds the local images Drover's tests and local cluster use. No registry is needed:
#   drover/etcd:3.4      FROM scratch: Debian's etcd binary and the libc it links
#   drover/nats:2.9      FROM scratch: Debian's nats-server binary and the libc it links
#   drover/busybox:1     a static busybox imported as an image (a task image with a shell)
# Idempotent: an image that already exists is kept unless --force is given.
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
