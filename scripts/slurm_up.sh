#!/usr/bin/env bash
# Start a throw-away Slurm cluster (Debian's Slurm 22.05) on this machine as plain background daemons, for the
# tests and for trying `glue-bench run --executor slurm`. Needs root (apt, munge, mknod, namespaces).
#   scripts/slurm_up.sh DIR [--nodes N] [--fake-gpus G]      then: export SLURM_CONF=DIR/slurm.conf
#   scripts/slurm_down.sh DIR                                stops everything it started, job steps included
#
# One node (the default): slurmctld and one slurmd named localhost on 127.0.0.1.
# N > 1 nodes: every daemon is a host of its own as far as Slurm, torchrun and glue-bench can tell. Each runs in
# a network namespace this script creates (veth pair onto a bridge, on a private 10.77.X.0/24 range picked from
# DIR: X.1 is this machine, the "login host"; X.10 is `ctl` with slurmctld; X.11, X.12, ... are node1, node2,
# ...), its own UTS namespace (hostname ctl, node1, ...) and its own mount namespace in which /etc/hosts is
# DIR/hosts, so the nodes resolve each other's names. The file system is shared. Nothing outside 10.77.X.0/24
# and loopback is ever addressed. Run something on a node with
#   nsenter --target "$(cat DIR/node1.pid)" --net --uts --mount -- COMMAND
# Every slurmd runs under a small keeper (DIR/keeper.py) that is the subreaper of everything the slurmd starts,
# so slurm_down.sh can stop the job steps too, and `slurm_down.sh DIR --kill-node node2` can take one node away
# with SIGKILL as if its host died.
set -euo pipefail
DIR=$(realpath -m "${1:?usage: slurm_up.sh DIR [--nodes N] [--fake-gpus G]}"); shift
GPUS=0
NODES=1
while [ $# -gt 0 ]; do
  case "$1" in
    --fake-gpus) GPUS=$2; shift ;;
    --nodes) NODES=$2; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
PACKAGES="slurmctld slurmd slurm-client munge"
if ! dpkg -s $PACKAGES >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null
fi
PYTHON=${PYTHON:-$(command -v python3)}
mkdir -p "$DIR"/{state,spool,log}

# munge: the Debian package creates a key; make one if it is missing, start munged once
if [ ! -s /etc/munge/munge.key ]; then
  mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null \
    || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=128 status=none
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
fi
mkdir -p /run/munge && chown munge:munge /run/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged
  echo started > "$DIR/munge.started"
fi
for _ in $(seq 50); do munge -n | unmunge >/dev/null 2>&1 && break; sleep 0.1; done

# The keeper: runs a daemon in the foreground as its child and is the subreaper of all it starts (slurmstepd
# double-forks away from slurmd). On SIGTERM it stops the daemon, then SIGKILLs whatever is left below it.
cat > "$DIR/keeper.py" <<'KEEPER'
import ctypes, os, signal, subprocess, sys, time

ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def descendants():
    parents = {}
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/stat") as f:
                parents[int(name)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            pass
    found, frontier = [], [os.getpid()]
    while frontier:
        frontier = [p for p, pp in parents.items() if pp in frontier]
        found += frontier
    return found


def finish(signum=None, frame=None):
    if signum is not None and daemon.poll() is None:
        daemon.terminate()
        try:
            daemon.wait(timeout=3)
        except subprocess.TimeoutExpired:
            pass
    for _ in range(20):
        left = descendants()
        if not left:
            break
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
        reap()
    sys.exit(0)


def reap():
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                return
        except ChildProcessError:
            return


daemon = subprocess.Popen(sys.argv[1:])
signal.signal(signal.SIGTERM, finish)
signal.signal(signal.SIGINT, finish)
while daemon.poll() is None:
    time.sleep(0.5)
    reap()
finish()
KEEPER

MEM=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) * 8 / 10 ))
if [ "$NODES" -gt 1 ]; then
  # names of at most 15 characters (interfaces) that differ between clusters in different folders
  TAG=gb$(printf '%s' "$DIR" | md5sum | cut -c1-4)
  OCTET=$(( 16#$(printf '%s' "$DIR" | md5sum | cut -c5-6) % 200 + 20 ))
  NET=10.77.$OCTET
  if ip -4 -o addr show | grep -q " $NET\."; then
    echo "$NET.0/24 is already in use on this machine (another cluster from $DIR?)" >&2; exit 1
  fi
  NAMES="ctl $(seq -f 'node%g' 1 "$NODES" | tr '\n' ' ')"
  { echo "127.0.0.1 localhost"; echo "$NET.1 login"; echo "$NET.10 ctl"
    for i in $(seq 1 "$NODES"); do echo "$NET.$((10 + i)) node$i"; done; } > "$DIR/hosts"
  printf '%s\n' "$TAG" > "$DIR/netns.tag"
  ip link add "${TAG}br" type bridge
  ip addr add "$NET.1/24" dev "${TAG}br"
  ip link set "${TAG}br" up
  for name in $NAMES; do
    ns="$TAG-$name"
    addr=$(awk -v n="$name" '$2 == n {print $1}' "$DIR/hosts")
    ip netns add "$ns"
    ip link add "${TAG}${name}" type veth peer name eth0 netns "$ns"
    ip link set "${TAG}${name}" master "${TAG}br" up
    ip -n "$ns" addr add "$addr/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    echo "$ns" >> "$DIR/netns.list"
  done
  NODE_NAMES=$(seq -f 'node%g' 1 "$NODES" | paste -sd,)
  NODE_LINES=$(for i in $(seq 1 "$NODES"); do
    echo "NodeName=node$i NodeAddr=$NET.$((10 + i)) CPUs=$(nproc) RealMemory=$MEM ${GPUS:+GRES_PLACEHOLDER} State=UNKNOWN"
  done)
  CTL_HOST="ctl($NET.10)"
  PER_NODE="%n"
  # a lost node is noticed, and its jobs requeued and started elsewhere, within seconds
  SLURMD_TIMEOUT=5
  MESSAGE_TIMEOUT=3
  CRED_EXPIRE=5  # how long a requeued job waits before it starts again
  SCHED_EXTRA=",sched_interval=2,bf_interval=2"
else
  NODE_NAMES=localhost
  NODE_LINES="NodeName=localhost NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$MEM GRES_PLACEHOLDER State=UNKNOWN"
  CTL_HOST=localhost
  PER_NODE=""
  SLURMD_TIMEOUT=60
  MESSAGE_TIMEOUT=10
  CRED_EXPIRE=10
  SCHED_EXTRA=""
fi

GRES=""
GRES_TYPES=""
if [ "$GPUS" -gt 0 ]; then
  # device nodes that look like NVIDIA GPUs to slurmd, so Slurm allocates them and sets CUDA_VISIBLE_DEVICES
  : > "$DIR/gres.conf"
  echo "AutoDetect=off" >> "$DIR/gres.conf"
  for node in ${NODE_NAMES//,/ }; do
    dev="$DIR/dev${PER_NODE:+/$node}"
    mkdir -p "$dev"
    for i in $(seq 0 $((GPUS - 1))); do [ -e "$dev/nvidia$i" ] || mknod "$dev/nvidia$i" c 195 "$i"; done
    echo "NodeName=$node Name=gpu Type=fake File=$dev/nvidia[0-$((GPUS - 1))]" >> "$DIR/gres.conf"
  done
  GRES="Gres=gpu:fake:$GPUS"
  GRES_TYPES="GresTypes=gpu"
fi
NODE_LINES=${NODE_LINES//GRES_PLACEHOLDER/$GRES}
[ -n "$PER_NODE" ] && for node in ${NODE_NAMES//,/ }; do mkdir -p "$DIR/spool/$node"; done
cat > "$DIR/slurm.conf" <<CONF
ClusterName=glue-bench-test
SlurmctldHost=$CTL_HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=cred_expire=$CRED_EXPIRE
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0$SCHED_EXTRA
MessageTimeout=$MESSAGE_TIMEOUT
ReturnToService=2
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool${PER_NODE:+/$PER_NODE}
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd${PER_NODE:+-$PER_NODE}.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd${PER_NODE:+-$PER_NODE}.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MaxArraySize=10001
InactiveLimit=0
KillWait=10
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=$SLURMD_TIMEOUT
Waittime=0
$GRES_TYPES
$NODE_LINES
PartitionName=debug Nodes=$NODE_NAMES Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$DIR/slurm.conf"

# run "$@" as host $1: its network namespace, its hostname, DIR/hosts as its /etc/hosts; the pid is the keeper's
on_host() {
  local name=$1; shift
  # nsenter, not `ip netns exec`: that remounts /sys, hiding the cgroup file systems slurmd looks for
  nsenter --net="/run/netns/$(cat "$DIR/netns.tag")-$name" unshare --uts --mount \
    sh -c 'hostname "$1" && mount --bind "$2" /etc/hosts && shift 2 && exec "$@"' sh "$name" "$DIR/hosts" "$@" \
    >>"$DIR/log/keeper-$name.log" 2>&1 &
  echo $! > "$DIR/$name.pid"
}

if [ "$NODES" -gt 1 ]; then
  on_host ctl "$PYTHON" "$DIR/keeper.py" slurmctld -D -f "$SLURM_CONF"
  for i in $(seq 1 "$NODES"); do on_host "node$i" "$PYTHON" "$DIR/keeper.py" slurmd -D -f "$SLURM_CONF" -N "node$i"; done
else
  slurmctld -f "$SLURM_CONF"
  "$PYTHON" "$DIR/keeper.py" slurmd -D -f "$SLURM_CONF" -N localhost >>"$DIR/log/keeper-localhost.log" 2>&1 &
  echo $! > "$DIR/localhost.pid"
fi
ready() { [ "$(sinfo -h -N -o '%T' 2>/dev/null | grep -cE '^(idle|mixed|allocated)')" = "$NODES" ]; }
for _ in $(seq 300); do ready && break; sleep 0.1; done
if ! ready; then
  echo "slurm did not come up; logs:" >&2
  tail -n 20 "$DIR"/log/*.log >&2
  exit 1
fi
echo "slurm is up ($NODES node(s)): export SLURM_CONF=$SLURM_CONF"
