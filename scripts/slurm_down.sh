#!/usr/bin/env bash
# Stop what scripts/slurm_up.sh DIR started, by pid (never by process name): every slurmd with the job steps it
# started (their keeper SIGKILLs what is left below it), slurmctld, munged if it started it, and the network
# namespaces and bridge of a multi-node cluster.
#   scripts/slurm_down.sh DIR
#   scripts/slurm_down.sh DIR --kill-node node2    one node "dies": SIGKILL its slurmd, its job steps and every
#                                                  other process in its namespace, at once; the rest stays up
DIR=$(realpath -m "${1:?usage: slurm_down.sh DIR [--kill-node NAME]}")
TAG=$(cat "$DIR/netns.tag" 2>/dev/null)

kill_namespace() {  # SIGKILL every process in one of our network namespaces, until none is left
  local ns=$1 pids
  for _ in $(seq 50); do
    pids=$(ip netns pids "$ns" 2>/dev/null)
    [ -z "$pids" ] && return 0
    kill -KILL $pids 2>/dev/null
    sleep 0.1
  done
  echo "warning: processes left in $ns: $(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')" >&2
}

if [ "${2:-}" = "--kill-node" ]; then
  [ -n "$TAG" ] && ip netns list | grep -q "^$TAG-$3\b" || { echo "no node $3 in $DIR" >&2; exit 2; }
  kill_namespace "$TAG-$3"
  exit 0
fi

pids=""
for f in "$DIR"/*.pid; do
  case "$f" in *"/slurmd"*.pid) continue ;; esac  # written by slurmd under its keeper: the keeper stops it
  [ -s "$f" ] && pids="$pids $(cat "$f")"
done
if [ -f "$DIR/munge.started" ] && [ -s /run/munge/munged.pid ]; then munge_pid=$(cat /run/munge/munged.pid); fi
[ -n "$pids" ] && kill $pids 2>/dev/null
alive=0
for _ in $(seq 75); do
  alive=0
  for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
  [ $alive = 0 ] && break
  sleep 0.2
done
[ $alive = 0 ] || echo "warning: still running after 15 s:$pids" >&2
if [ -n "$TAG" ]; then
  for ns in $(cat "$DIR/netns.list" 2>/dev/null); do
    kill_namespace "$ns"
    ip netns delete "$ns" 2>/dev/null
  done
  ip link delete "${TAG}br" 2>/dev/null
  rm -f "$DIR/netns.tag" "$DIR/netns.list"
fi
if [ -n "${munge_pid:-}" ]; then
  kill "$munge_pid" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$munge_pid" 2>/dev/null || break; sleep 0.1; done
fi
exit 0
