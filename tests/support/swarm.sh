#!/usr/bin/env bash
# A real N-node Docker Swarm on one machine, for tests (run as root).
#
#   swarm.sh up DIR N          bring up N nodes under DIR (N >= 1) and wait until all
#                              are Ready; prints one line per node, `nodeK ROLE ADDRESS
#                              unix://DIR/nK/d.sock` (ROLE: manager for node 1, else
#                              worker), then `host ADDRESS LINK`: the host's own
#                              address on the swarm's network and its link
#   swarm.sh down DIR          kill (SIGKILL) and remove everything `up` made: processes,
#                              namespaces, links, mounts, cgroups, shim sockets, DIR; safe
#                              to run twice, on a DIR that never existed, after a failed
#                              `up`
#   swarm.sh kill-node DIR K   node K fails: its engine, containerd, shims and containers
#                              are all killed with SIGKILL (a power cut, not a shutdown)
#   swarm.sh start-node DIR K  start node K's engine again and wait until it is back in
#                              the swarm
#
# Layout. Every node is one `dockerd` in a network namespace of its own; a private "hub"
# namespace holds a bridge (br0) and every node is joined to it by a veth pair (vK in the
# hub, eth0 in the node) with a private address 10.213.X.K/24 and no default route: the
# nodes reach each other and nothing else. The host gets 10.213.X.254 on a veth pair
# into the hub (link gts<tag>) so that a process on the host (gt's endpoint) can be
# reached by agents on the nodes; X is picked so it collides with no address the host
# already has. The namespaces are files under DIR/ns (bind mounts made by `unshare
# --net=FILE`), not names in /run/netns, so nothing global is needed to find them.
#
# Why it is done this way:
# - dockerd is started with `nsenter --net=NS unshare --uts -- dockerd …`, NOT `ip netns
#   exec`: that remounts /sys in a new mount namespace, the engine then finds no devices
#   cgroup and every container fails to start. Only the network (and the hostname, so
#   each node has its own name in `docker node ls`) is private; mounts stay the host's.
# - Two engines on one machine must share no path: each node has its own --data-root,
#   --exec-root (containerd's state and socket go there too), --pidfile, --host socket,
#   --cgroup-parent, and --config-file (so /etc/docker/daemon.json is never read) whose
#   only setting is the engine's key path (20.10 takes the engine ID from that key).
# - `--bridge none --iptables=false --ip6tables=false`: the engines must not touch the
#   host's firewall or make bridges; swarm tasks use overlay networks or the host network.
# - The kernel has no IPVS: services need `--endpoint-mode dnsrr` (or host networking);
#   VIPs and published ports do not work.
# - `docker swarm init --dispatcher-heartbeat 1s`: a killed node is marked Down within a
#   few seconds instead of ~15 s.
# - There is no registry: the image ($GT_TEST_IMAGE, default gt-agent:latest, taken from
#   the engine at $DOCKER_HOST) is copied into every node with `docker save | docker
#   load`, and DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 keeps the engines from trying to
#   pull it before each task.
#
# Needs only bash, coreutils, findutils, grep, awk, iproute2 (ip), util-linux (nsenter,
# unshare, setsid, mountpoint) and docker.io (dockerd, docker). Every wait polls with a
# deadline ($GT_SWARM_TIMEOUT seconds each, default 120); there is no fixed sleep.
set -euo pipefail

IMAGE=${GT_TEST_IMAGE:-gt-agent:latest}
TIMEOUT=${GT_SWARM_TIMEOUT:-120}

die() {
  echo "swarm.sh: $*" >&2
  exit 1
}
usage() {
  echo "usage: swarm.sh up DIR N | down DIR | kill-node DIR K | start-node DIR K" >&2
  exit 2
}

[ $# -ge 2 ] || usage
CMD=$1
DIR=$(realpath -m -- "$2")
[ "$DIR" != / ] || die "DIR must not be /"
# A short tag unique to DIR names the things that cannot live under DIR: the host's link
# and the cgroup parents.
TAG=$(printf %s "$DIR" | md5sum | cut -c1-8)
HOSTLINK=gts$TAG
CGROUP=gtswarm-$TAG

ns() { echo "$DIR/ns/$1"; }
nd() { echo "$DIR/n$1"; }
sock() { echo "unix://$DIR/n$1/d.sock"; }
# docker against node K.
dk() {
  local k=$1
  shift
  DOCKER_HOST=$(sock "$k") docker "$@"
}
in_ns() {
  local n=$1
  shift
  nsenter --net="$(ns "$n")" "$@"
}

# until SECONDS WHAT CMD…: poll CMD every 0.1 s until it succeeds, fail after SECONDS.
until_ok() {
  local secs=$1 what=$2
  shift 2
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || {
      echo "swarm.sh: timed out after ${secs}s waiting for $what" >&2
      return 1
    }
    sleep 0.1
  done
}

# --- processes ----------------------------------------------------------------------

# Is pid $1 alive (a zombie counts as dead)?
alive() {
  local st
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  st=${st##*) }
  [ "${st%% *}" != Z ]
}

# The pid of node K's dockerd by its pidfile, if that pid is still this node's dockerd
# (after a SIGKILL the file stays and the pid may be reused).
engine_pid() {
  local p
  # (No newline ends a pidfile: `read` would fail.)
  p=$(cat "$(nd "$1")/d.pid" 2>/dev/null) && [ -n "$p" ] &&
    tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | grep -qF -- "--pidfile $(nd "$1")/d.pid" &&
    alive "$p" && echo "$p"
}

# Every process of node K: those in its network namespace (dockerd, containerd, shims,
# host-network containers), those in its cgroup parent (containers), and all their
# descendants.
node_pids() {
  local k=$1 p st f
  local -A keep=() parent=()
  if mountpoint -q "$(ns "n$k")" 2>/dev/null; then
    local ino
    ino=$(stat -L -c %i "$(ns "n$k")")
    while read -r f; do
      f=${f#/proc/}
      keep[${f%%/*}]=1
    done < <(find /proc/[0-9]*/ns/net -maxdepth 0 -lname "net:\[$ino\]" 2>/dev/null || true)
  fi
  while read -r p; do keep[$p]=1; done < <(cgroup_pids "$CGROUP/n$k")
  p=$(engine_pid "$k") && keep[$p]=1
  # Descendants: repeat until no new process joins.
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    read -r st 2>/dev/null <"/proc/$p/stat" || continue
    st=${st##*) }
    st=${st#* }
    parent[$p]=${st%% *}
  done
  local grew=1
  while [ $grew = 1 ]; do
    grew=0
    for p in "${!parent[@]}"; do
      if [ -z "${keep[$p]:-}" ] && [ -n "${keep[${parent[$p]}]:-}" ]; then
        keep[$p]=1
        grew=1
      fi
    done
  done
  for p in "${!keep[@]}"; do echo "$p"; done
}

# The processes in cgroup $1 (under the root of any hierarchy, v1 or v2) and below it.
cgroup_pids() {
  local f
  find /sys/fs/cgroup/"$1" /sys/fs/cgroup/*/"$1" -name cgroup.procs 2>/dev/null |
    while read -r f; do cat "$f" 2>/dev/null || true; done
}

# Kill every process of node K with SIGKILL and wait until they are gone.
kill_node() {
  local k=$1 pids p
  local end=$((SECONDS + TIMEOUT))
  while :; do
    pids=$(node_pids "$k")
    local left=""
    for p in $pids; do
      kill -9 "$p" 2>/dev/null || true
      if alive "$p"; then left="$left $p"; fi
    done
    if [ -z "$left" ]; then
      remove_shim_sockets "$k"
      rm -f "$(nd "$k")/d.pid" "$(nd "$k")/exec/containerd/containerd.pid"
      return 0
    fi
    [ $SECONDS -lt $end ] || die "node $k: processes$left do not die"
    sleep 0.1
  done
}

# Shim sockets live in /run/containerd/s, outside DIR, and a shim killed with SIGKILL
# cannot remove its own; neither does containerd when it starts again. Each task's bundle
# under node K's exec root names its shim's socket (file `address`); a shim killed before
# that file was written made its socket at the path containerd derives from its own
# socket and the container: sha256("<containerd.sock>/moby/<id>").
remove_shim_sockets() {
  local d a id
  d=$(nd "$1")
  for a in "$d"/exec/containerd/*/io.containerd.runtime.v2.task/*/*/address; do
    [ -f "$a" ] || continue
    a=$(cat "$a")
    a=${a#unix://}
    case "$a" in /run/containerd/s/*) rm -f "$a" ;; esac
  done
  for id in "$d"/data/containers/*/ "$d"/exec/containerd/*/io.containerd.runtime.v2.task/moby/*/; do
    [ -d "$id" ] || continue
    id=${id%/}
    id=${id##*/}
    a=$(printf %s "$d/exec/containerd/containerd.sock/moby/$id" | sha256sum)
    rm -f "/run/containerd/s/${a%% *}"
  done
}

# --- up -----------------------------------------------------------------------------

# Start node K's engine (its namespace and directory exist) and wait until it answers.
start_engine() {
  local k=$1 d p
  d=$(nd "$k")
  rm -f "$d/d.pid"
  # dockerd reuses the containerd whose pid its pidfile holds if that pid is alive, and
  # after a SIGKILL the pid may belong to any process by now (pids wrap fast on a busy
  # machine): it would then wait for a containerd that never answers.
  p=$(cat "$d/exec/containerd/containerd.pid" 2>/dev/null || true)
  if [ -n "$p" ] && ! tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | grep -qF -- "$d/exec/containerd"; then
    rm -f "$d/exec/containerd/containerd.pid"
  fi
  # setsid: the engine outlives this script and no terminal signal reaches it. Output
  # goes to a log, so whoever runs this script sees its stdout close when it exits.
  setsid nsenter --net="$(ns "n$k")" unshare --uts -- \
    /bin/sh -c 'hostname "$0" && exec "$@"' "node$k" \
    env DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 \
    dockerd --host "$(sock "$k")" --data-root "$d/data" --exec-root "$d/exec" \
    --pidfile "$d/d.pid" --config-file "$d/daemon.json" \
    --cgroup-parent "/$CGROUP/n$k" \
    --bridge none --iptables=false --ip6tables=false --ip-masq=false \
    </dev/null >>"$d/dockerd.log" 2>&1 &
  local pid=$!
  local end=$((SECONDS + TIMEOUT))
  until dk "$k" version >/dev/null 2>&1; do
    if ! alive "$pid"; then
      tail -n 20 "$d/dockerd.log" >&2
      die "node $k: dockerd exited (log: $d/dockerd.log)"
    fi
    [ $SECONDS -lt $end ] || die "node $k: dockerd did not answer within ${TIMEOUT}s"
    sleep 0.1
  done
}

# A /24 in 10.213.0.0/16 that no host interface uses, starting from one the tag picks.
pick_subnet() {
  local used start i x
  used=$(ip -o -4 addr show | grep -o ' 10\.213\.[0-9]*\.' || true)
  start=$((16#${TAG:0:2}))
  for i in $(seq 0 255); do
    x=$(((start + i) % 256))
    case "$used" in *" 10.213.$x."*) ;; *)
      echo "10.213.$x"
      return
      ;;
    esac
  done
  die "no free /24 in 10.213.0.0/16"
}

ready_count() {
  dk 1 node ls --format '{{.Status}}' 2>/dev/null | grep -c '^Ready$' || true
}
all_ready() { [ "$(ready_count)" = "$1" ]; }

cmd_up() {
  local n=$1 k
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 250 ] || die "N must be 1..250"
  [ "$(id -u)" = 0 ] || die "must run as root"
  [ ! -e "$DIR/state" ] || die "$DIR already holds a swarm (swarm.sh down $DIR first)"
  for c in ip nsenter unshare setsid mountpoint dockerd docker; do
    command -v $c >/dev/null || die "$c is missing (apt-get install iproute2 util-linux docker.io)"
  done
  # The image first: if it is missing there is nothing to set up.
  docker image inspect "$IMAGE" >/dev/null 2>&1 ||
    die "image $IMAGE not found in the engine at ${DOCKER_HOST:-the default socket}"

  trap 'echo "swarm.sh: up failed; engine logs: $DIR/n*/dockerd.log; \`swarm.sh down $DIR\` removes it all" >&2' EXIT
  mkdir -p "$DIR/ns"
  local net keypath=""
  grep -qa deprecated-key-path "$(command -v dockerd)" && keypath=1
  net=$(pick_subnet)
  printf 'N=%s\nNET=%s\n' "$n" "$net" >"$DIR/state"

  # The hub: a namespace with a bridge and no address; the host's link into it.
  touch "$(ns hub)"
  unshare --net="$(ns hub)" true
  in_ns hub ip link set lo up
  in_ns hub ip link add br0 type bridge
  in_ns hub ip link set br0 up
  ip link add "$HOSTLINK" type veth peer name up0 netns "$(ns hub)"
  in_ns hub ip link set up0 master br0 up
  ip addr add "$net.254/24" dev "$HOSTLINK"
  ip link set "$HOSTLINK" up

  for k in $(seq "$n"); do
    mkdir -p "$(nd "$k")"
    # The engine's key (its ID in 20.10) is set only in daemon.json; later engines
    # dropped it and would reject the key.
    if [ -n "$keypath" ]; then
      echo "{\"deprecated-key-path\": \"$(nd "$k")/key.json\"}"
    else
      echo '{}'
    fi >"$(nd "$k")/daemon.json"
    touch "$(ns "n$k")"
    unshare --net="$(ns "n$k")" true
    in_ns "n$k" ip link set lo up
    in_ns hub ip link add "v$k" type veth peer name eth0 netns "$(ns "n$k")"
    in_ns hub ip link set "v$k" master br0 up
    in_ns "n$k" ip addr add "$net.$k/24" dev eth0
    in_ns "n$k" ip link set eth0 up
  done

  # The image, saved once from the source engine while the engines start.
  local starts=()
  docker save -o "$DIR/image.tar" "$IMAGE" &
  starts+=($!)
  for k in $(seq "$n"); do
    start_engine "$k" &
    starts+=($!)
  done
  # `wait PID` one by one: any failure fails up.
  for j in "${starts[@]}"; do wait "$j" || die "could not start the engines or save $IMAGE"; done

  # Load the image everywhere while the swarm forms.
  local loads=()
  for k in $(seq "$n"); do
    dk "$k" load -q -i "$DIR/image.tar" >/dev/null &
    loads+=($!)
  done

  dk 1 swarm init --advertise-addr "$net.1" --listen-addr "$net.1:2377" \
    --dispatcher-heartbeat 1s >/dev/null
  local token
  token=$(dk 1 swarm join-token -q worker)
  local joins=()
  for k in $(seq 2 "$n"); do
    dk "$k" swarm join --token "$token" --advertise-addr "$net.$k" \
      --listen-addr "$net.$k:2377" "$net.1:2377" >/dev/null &
    joins+=($!)
  done
  for j in "${joins[@]}"; do wait "$j" || die "a node could not join the swarm"; done
  for j in "${loads[@]}"; do wait "$j" || die "could not load $IMAGE into a node"; done
  rm -f "$DIR/image.tar"
  until_ok "$TIMEOUT" "$n Ready nodes" all_ready "$n" ||
    {
      dk 1 node ls >&2 || true
      exit 1
    }

  for k in $(seq "$n"); do
    local role=worker
    [ "$k" = 1 ] && role=manager
    echo "node$k $role $net.$k $(sock "$k")"
  done
  echo "host $net.254 $HOSTLINK"
  trap - EXIT
}

# --- kill-node / start-node ----------------------------------------------------------

node_arg() {
  [[ "${1:-}" =~ ^[0-9]+$ ]] && [ -d "$(nd "$1")" ] && mountpoint -q "$(ns "n$1")" ||
    die "no node $1 in $DIR"
}

cmd_start_node() {
  local k=$1
  node_arg "$k"
  ! engine_pid "$k" >/dev/null || die "node $k is running"
  start_engine "$k"
  until_ok "$TIMEOUT" "node $k to rejoin the swarm" node_active "$k"
  if [ "$k" != 1 ]; then
    # The manager sees it again once it reports a heartbeat.
    until_ok "$TIMEOUT" "the manager to see node $k Ready" node_ready "$k"
  else
    # A restarted manager sees every node as Unknown until it reports again.
    local running=0 j
    for j in $(seq "$(sed -n 's/^N=//p' "$DIR/state")"); do
      ! engine_pid "$j" >/dev/null || running=$((running + 1))
    done
    until_ok "$TIMEOUT" "the manager to see $running nodes Ready" all_ready "$running"
  fi
  echo "node$k $(sock "$k")"
}
node_active() {
  [ "$(dk "$1" info --format '{{.Swarm.LocalNodeState}}')" = active ]
}
node_ready() {
  local id
  id=$(dk "$1" info --format '{{.Swarm.NodeID}}')
  [ "$(dk 1 node inspect --format '{{.Status.State}}' "$id")" = ready ]
}

# --- down ---------------------------------------------------------------------------

mounts_under() {
  # /proc/mounts escapes spaces as \040; DIR paths here have none.
  awk -v d="$DIR" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/mounts | sort -r
}

cmd_down() {
  local k pid
  if [ -d "$DIR" ]; then
    # SIGKILL, all nodes at once: nothing on them needs to survive, and a graceful stop
    # takes seconds per engine. What a graceful stop would tidy is tidied here: the
    # shims' sockets (kill_node), the mounts and the cgroups (below).
    local d pids=()
    for d in "$DIR"/n*/; do
      k=${d%/}
      k=${k##*/n}
      [[ "$k" =~ ^[0-9]+$ ]] || continue
      kill_node "$k" &
      pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || exit 1; done
  fi
  # Links: those in the namespaces go with them; the host end is deleted here.
  ip link del "$HOSTLINK" 2>/dev/null || true
  # Mounts: overlay layers, container namespaces, the namespace files; innermost first,
  # again until none is left (a lazy unmount may uncover another).
  local end=$((SECONDS + TIMEOUT)) m
  while [ -n "$(mounts_under)" ]; do
    for m in $(mounts_under); do umount -l "$m" 2>/dev/null || true; done
    [ -n "$(mounts_under)" ] || break
    [ $SECONDS -lt $end ] || die "mounts under $DIR do not go: $(mounts_under | tr '\n' ' ')"
    sleep 0.1
  done
  # Cgroup parents: remove the (now empty) directories, deepest first.
  local cg
  for cg in /sys/fs/cgroup/$CGROUP /sys/fs/cgroup/*/$CGROUP; do
    [ -d "$cg" ] || continue
    until find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null && [ ! -d "$cg" ]; do
      [ $SECONDS -lt $end ] || die "cgroup $cg is still busy"
      # Whatever still lives in the swarm's cgroups is the swarm's (a task's process
      # that a killed shim left behind, one starting as its node went): it goes too.
      find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
      sleep 0.1
    done
  done
  rm -rf "$DIR"
}

case "$CMD" in
  up)
    [ $# = 3 ] || usage
    cmd_up "$3"
    ;;
  down)
    [ $# = 2 ] || usage
    cmd_down
    ;;
  kill-node)
    [ $# = 3 ] || usage
    node_arg "$3"
    kill_node "$3"
    ;;
  start-node)
    [ $# = 3 ] || usage
    cmd_start_node "$3"
    ;;
  *) usage ;;
esac
