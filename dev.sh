#!/usr/bin/env bash
# gt's one developer script.
#   bash dev.sh test    everything CI runs: fmt, clippy, the whole test suite on a real
#                       Docker engine (installed and started here when none answers)
#   bash dev.sh demo    the main job: build gt, make sure an engine runs, create a town
#                       with a sample rig and sling beads to agents in real containers
#   bash dev.sh image   (re)build the local agent image gt-agent:latest
#   bash dev.sh bench   the benchmarks (release build)
#   bash dev.sh stress [N] [SUITE…]
#                       run the Docker-backed suites (default: sling patrol protocol) N
#                       times in a row (default 20) and print `N passed, M failed`
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
  # A mirror that hiccups once must not fail the run: three tries, a pause between.
  local try
  for try in 1 2 3; do
    if as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; then
      return 0
    fi
    log "apt-get failed (try $try of 3)"
    sleep $((try * 5))
  done
  echo "could not install $* from the Debian mirrors" >&2
  exit 1
}

cleanup() {
  if [ -n "$DOCKER_TMP" ]; then
    # Remove every test container first, then stop the engine we started: the pid in
    # its pidfile is dockerd itself (the pid of `&` may be a wrapper such as sudo).
    docker ps -aq --filter label=gt.town 2>/dev/null | xargs -r docker rm -f >/dev/null 2>&1 || true
    local pid
    pid=$(cat "$DOCKER_TMP/docker.pid" 2>/dev/null || echo "$STARTED_DOCKERD")
    as_root kill "$pid" 2>/dev/null || true
    for _ in $(seq 200); do as_root kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if as_root kill -0 "$pid" 2>/dev/null; then as_root kill -9 "$pid" 2>/dev/null || true; fi
    wait "$STARTED_DOCKERD" 2>/dev/null || true
    # dockerd mounts its data root onto itself; leave no mount behind.
    awk -v d="$DOCKER_TMP" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r |
      while read -r m; do as_root umount -l "$m" 2>/dev/null || true; done
    as_root rm -rf "$DOCKER_TMP" 2>/dev/null || true
    log "stopped the dockerd this script started"
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
  # mktemp makes it 0700: a test that runs gt as another user (a non-root gt) must reach
  # the socket, whose own mode (0660, root and the docker group) is the access control.
  chmod 0711 "$DOCKER_TMP"
  log "starting dockerd on unix://$DOCKER_TMP/docker.sock"
  local sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  "${sudo[@]}" dockerd --host "unix://$DOCKER_TMP/docker.sock" --data-root "$DOCKER_TMP/data" \
    --exec-root "$DOCKER_TMP/exec" --pidfile "$DOCKER_TMP/docker.pid" \
    --bridge none --iptables=false --ip6tables=false >"$DOCKER_TMP/dockerd.log" 2>&1 &
  STARTED_DOCKERD=$!
  export DOCKER_HOST="unix://$DOCKER_TMP/docker.sock"
  for _ in $(seq 600); do
    docker info >/dev/null 2>&1 && return
    kill -0 "$STARTED_DOCKERD" 2>/dev/null || break
    sleep 0.1
  done
  cat "$DOCKER_TMP/dockerd.log" >&2
  echo "dockerd did not come up" >&2
  exit 1
}

# A multi-node swarm in network namespaces (tests/support/swarm.sh, tests/swarm_nodes.rs)
# needs `ip` (a minimal Debian has no iproute2) and util-linux's nsenter and unshare.
ensure_swarm_tools() {
  command -v ip >/dev/null || apt_install iproute2
  command -v nsenter >/dev/null && command -v unshare >/dev/null || apt_install util-linux
  # `gt serve` makes its town CA with openssl (tests/remote.rs, the clone-mode swarm test).
  command -v openssl >/dev/null || apt_install openssl
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
  # gt itself, for agents whose containers mount nothing of the host (clone workspace).
  mkdir -p "$rootfs/usr/local/bin"
  [ -z "${1:-}" ] || cp "$1" "$rootfs/usr/local/bin/gt"
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
  cargo clippy --all-targets -- -D warnings
  log "building"
  cargo build --features failpoints --tests --bins
  ensure_docker
  # The real agent CLIs come from the npm registry (tests/agents_*.rs, tests/images.rs).
  command -v npm >/dev/null || apt_install npm
  # The live view (`gt top`) is tested in a real terminal: tmux (tests/top.rs).
  command -v tmux >/dev/null || apt_install tmux
  ensure_swarm_tools
  build_image "$TARGET/debug/gt"
  export CI=${CI:-true} GT_TEST_IMAGE=$IMAGE
  log "cargo test"
  # --no-fail-fast: one failing test binary must not hide the results of the others.
  cargo test --features failpoints --no-fail-fast -- --test-threads="${GT_TEST_THREADS:-4}"
}

# Run the timing-sensitive suites again and again: a flaky test is a bug.
cmd_stress() {
  local n=${1:-20}
  shift || true
  local suites=("$@")
  [ ${#suites[@]} -gt 0 ] || suites=(sling patrol protocol)
  local args=()
  for s in "${suites[@]}"; do args+=(--test "$s"); done
  cargo build --features failpoints --tests --bins
  ensure_docker
  ensure_swarm_tools
  build_image "$TARGET/debug/gt"
  export CI=${CI:-true} GT_TEST_IMAGE=$IMAGE
  local passed=0 failed=0 i
  mkdir -p "$TARGET/stress"
  for i in $(seq "$n"); do
    if cargo test --features failpoints --no-fail-fast "${args[@]}" -- \
      --test-threads="${GT_TEST_THREADS:-4}" >"$TARGET/stress/run-$i.log" 2>&1; then
      passed=$((passed + 1))
      log "run $i of $n: passed"
    else
      failed=$((failed + 1))
      log "run $i of $n: FAILED (see $TARGET/stress/run-$i.log)"
      grep -E '^test .* FAILED$|panicked at' "$TARGET/stress/run-$i.log" >&2 || true
    fi
  done
  echo "stress ${suites[*]}: $passed passed, $failed failed"
  [ "$failed" = 0 ]
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
  ensure_swarm_tools
  build_image "$TARGET/release/gt"
  cargo bench
}

case "${1:-test}" in
  test) cmd_test ;;
  demo) cmd_demo ;;
  image)
    # Into the engine that already runs (DOCKER_HOST or the default socket): an engine
    # this script started would take the image with it when it stops.
    docker info >/dev/null 2>&1 || {
      echo "no Docker engine answers at ${DOCKER_HOST:-the default socket}: start this machine's engine" >&2
      echo "(sudo apt-get install -y docker.io, then sudo service docker start; test and demo start a private one and stop it again)" >&2
      exit 1; }
    cargo build
    build_image "$TARGET/debug/gt" ;;
  bench) cmd_bench ;;
  stress) shift; cmd_stress "$@" ;;
  *) echo "usage: bash dev.sh [test|demo|image|bench|stress [N] [SUITE…]]" >&2; exit 2 ;;
esac
