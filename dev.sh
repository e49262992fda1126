#!/usr/bin/env bash
# gt's one developer script.
#   bash dev.sh test    everything CI runs: fmt, clippy, the whole test suite on a real
#                       Docker engine (installed and started here when none answers)
#   bash dev.sh demo    the main job: build gt, make sure an engine runs, create a town
#                       with a sample rig and sling beads to agents in real containers
#   bash dev.sh image   (re)build the local agent image gt-agent:latest
#   bash dev.sh bench   the benchmarks (release build)
# An engine this script starts (private socket and data root under a temp dir) is
# stopped again when the script exits.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
IMAGE=${GT_TEST_IMAGE:-gt-agent:latest}
STARTED_DOCKERD=""
DOCKER_TMP=""

log() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  log "installing $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

cleanup() {
  if [ -n "$STARTED_DOCKERD" ]; then
    # Remove every test container first, then stop the engine we started.
    docker ps -aq --filter label=gt.town 2>/dev/null | xargs -r docker rm -f >/dev/null 2>&1 || true
    kill "$STARTED_DOCKERD" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$STARTED_DOCKERD" 2>/dev/null || break; sleep 0.1; done
    as_root rm -rf "$DOCKER_TMP" 2>/dev/null || true
  fi
}
trap cleanup EXIT

ensure_docker() {
  command -v docker >/dev/null && command -v dockerd >/dev/null || apt_install docker.io
  if docker info >/dev/null 2>&1; then
    log "using the Docker engine at ${DOCKER_HOST:-the default socket}"
    return
  fi
  DOCKER_TMP=$(mktemp -d /tmp/gt-dockerd.XXXXXX)
  log "starting dockerd on unix://$DOCKER_TMP/docker.sock"
  as_root dockerd --host "unix://$DOCKER_TMP/docker.sock" --data-root "$DOCKER_TMP/data" \
    --exec-root "$DOCKER_TMP/exec" --pidfile "$DOCKER_TMP/docker.pid" \
    --bridge none --iptables=false --ip6tables=false >"$DOCKER_TMP/dockerd.log" 2>&1 &
  STARTED_DOCKERD=$!
  export DOCKER_HOST="unix://$DOCKER_TMP/docker.sock"
  # Tests that restart the engine need to know how it was started.
  export GT_TEST_DOCKERD_ARGS="--host unix://$DOCKER_TMP/docker.sock --data-root $DOCKER_TMP/data --exec-root $DOCKER_TMP/exec --pidfile $DOCKER_TMP/docker.pid --bridge none --iptables=false --ip6tables=false"
  export GT_TEST_DOCKERD_PID=$STARTED_DOCKERD
  for _ in $(seq 300); do
    docker info >/dev/null 2>&1 && return
    kill -0 "$STARTED_DOCKERD" 2>/dev/null || break
    sleep 0.1
  done
  cat "$DOCKER_TMP/dockerd.log" >&2
  echo "dockerd did not come up" >&2
  exit 1
}

# The agent image, assembled from host files and imported (no registry is reachable):
# busybox for a shell and tools, git and the shared libraries it and gt need.
build_image() {
  command -v busybox >/dev/null || apt_install busybox-static
  [ -x /usr/bin/git ] || apt_install git
  local rootfs
  rootfs=$(mktemp -d /tmp/gt-rootfs.XXXXXX)
  mkdir -p "$rootfs"/{bin,usr/bin,lib,lib64,etc,tmp,gt,home/agent}
  chmod 1777 "$rootfs/tmp" "$rootfs/home/agent"
  cp "$(command -v busybox)" "$rootfs/bin/busybox"
  for applet in $(busybox --list); do
    [ -e "$rootfs/bin/$applet" ] || ln -s busybox "$rootfs/bin/$applet"
  done
  cp /usr/bin/git "$rootfs/usr/bin/git"
  local bin lib libs
  for bin in /usr/bin/git "$@"; do
    [ -x "$bin" ] || { echo "build_image: $bin is missing" >&2; exit 1; }
    libs=$(ldd "$bin" | grep -o '/[^ ]*')
    for lib in $libs; do
      mkdir -p "$rootfs$(dirname "$lib")"
      cp -L "$lib" "$rootfs$lib"
    done
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nagent:x:1000:1000:agent:/home/agent:/bin/sh\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nagent:x:1000:\n' >"$rootfs/etc/group"
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin HOME=/tmp' \
    --change 'WORKDIR /' - "$IMAGE" >/dev/null
  rm -rf "$rootfs"
  log "built image $IMAGE"
}

cmd_test() {
  command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)" >&2; exit 1; }
  rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy rustfmt || true
  log "cargo fmt --check"
  cargo fmt --check
  log "cargo clippy"
  cargo clippy --all-targets --features failpoints -- -D warnings
  log "building"
  cargo build --features failpoints --tests --bins
  ensure_docker
  build_image "$TARGET/debug/gt"
  export CI=${CI:-true} GT_TEST_IMAGE=$IMAGE
  log "cargo test"
  cargo test --features failpoints -- --test-threads="${GT_TEST_THREADS:-4}"
}

cmd_demo() {
  cargo build --release
  ensure_docker
  build_image "$TARGET/release/gt"
  bash "$ROOT/tests/support/demo.sh" "$TARGET/release/gt"
}

cmd_bench() {
  cargo build --release
  ensure_docker
  build_image "$TARGET/release/gt"
  cargo bench
}

case "${1:-test}" in
  test) cmd_test ;;
  demo) cmd_demo ;;
  image) ensure_docker; cargo build; build_image "$TARGET/debug/gt"; STARTED_DOCKERD="" ;;
  bench) cmd_bench ;;
  *) echo "usage: bash dev.sh [test|demo|image|bench]" >&2; exit 2 ;;
esac
