#!/usr/bin/env bash
# Stop what scripts/slurm_up.sh DIR started, by pid file (never by process name).
DIR=$(realpath -m "${1:?usage: slurm_down.sh DIR}")
pids=""
for f in "$DIR/slurmd.pid" "$DIR/slurmctld.pid"; do [ -s "$f" ] && pids="$pids $(cat "$f")"; done
if [ -f "$DIR/munge.started" ] && [ -s /run/munge/munged.pid ]; then pids="$pids $(cat /run/munge/munged.pid)"; fi
[ -n "$pids" ] && kill $pids 2>/dev/null
alive=0
for _ in $(seq 75); do
  alive=0
  for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
  [ $alive = 0 ] && break
  sleep 0.2
done
[ $alive = 0 ] || echo "warning: still running after 15 s:$pids" >&2
exit 0
