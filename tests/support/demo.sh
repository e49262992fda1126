#!/usr/bin/env bash
# The main job, end to end, on a real Docker engine (run via `bash dev.sh demo`):
# a town with a sample rig, three beads slung to agents in containers, one agent's
# container killed mid-work and recovered by patrol, every bead done with its merge
# request landed on the remote's main by the merge queue, and a convoy that lands.
set -euo pipefail
GT=${1:?usage: demo.sh PATH-TO-GT}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gt-demo.XXXXXX")
step() { printf '\n\033[1m### %s\033[0m\n' "$*"; }
cleanup() { docker ps -aq --filter "label=gt.town=${TOWN_ID:-none}" | xargs -r docker rm -f >/dev/null 2>&1 || true; }
trap cleanup EXIT

step "a sample project and a bare remote"
git init -q -b main "$WORK/project"
echo "# sample" > "$WORK/project/README.md"
git -C "$WORK/project" add README.md
git -C "$WORK/project" -c user.name=demo -c user.email=demo@example.com commit -q -m init
git clone -q --bare "$WORK/project" "$WORK/remote.git"

step "gt init"
export GT_TOWN="$WORK/town"
$GT init "$GT_TOWN"
TOWN_ID=$($GT --json status | sed -n 's/.*"town_id": "\(.*\)".*/\1/p')

step "gt rig add (the agent is tests/support/scripted-agent.sh)"
$GT rig add demo "$WORK/project" --remote "$WORK/remote.git" --memory 256m --cpus 1 --merge auto \
  --command "AGENT_SLEEP=10
$(cat "$HERE/scripted-agent.sh")"

step "three beads, one convoy"
B1=$($GT bead create --rig demo "Write the parser" -m "Parse the config file")
B2=$($GT bead create --rig demo "Add the CLI flag")
B3=$($GT bead create --rig demo "Document it")
$GT convoy create release-1 "$B1" "$B2" "$B3" --policy all

step "gt sling $B1 $B2 $B3"
$GT sling "$B1" "$B2" "$B3"
$GT status
$GT polecat list

step "kill one agent's container mid-work"
VICTIM=$(docker ps -q --filter "label=gt.town=$TOWN_ID" | head -n 1)
docker kill "$VICTIM" >/dev/null
echo "killed container ${VICTIM:0:12}"

step "patrol until every bead is done"
deadline=$((SECONDS + 120))
until [ "$($GT bead list --status done --json | grep -c '"id"')" = 3 ]; do
  [ $SECONDS -lt $deadline ] || { echo "beads did not finish in time" >&2; $GT bead list; exit 1; }
  $GT patrol
  sleep 2
done

step "the merge queue lands what is left (patrol lands as it goes)"
$GT mq run
git -C "$WORK/remote.git" log --oneline main

step "the result"
$GT bead list
$GT mq list
$GT convoy status
$GT mail inbox
$GT status
$GT doctor
echo
echo "town left at $GT_TOWN (its containers are removed)"
