#!/usr/bin/env bash
# Start a throw-away single-node Slurm cluster (Debian's Slurm 22.05) as plain background daemons, for the
# tests and for trying `glue-bench run --executor slurm` on one machine. Needs root (apt, munge, mknod).
#   scripts/slurm_up.sh DIR [--fake-gpus N]      then: export SLURM_CONF=DIR/slurm.conf
#   scripts/slurm_down.sh DIR                    stops every daemon it started, by pid file
set -euo pipefail
DIR=$(realpath -m "${1:?usage: slurm_up.sh DIR [--fake-gpus N]}"); shift
GPUS=0
while [ $# -gt 0 ]; do
  case "$1" in --fake-gpus) GPUS=$2; shift ;; *) echo "unknown argument $1" >&2; exit 2 ;; esac
  shift
done
PACKAGES="slurmctld slurmd slurm-client munge"
if ! dpkg -s $PACKAGES >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null
fi
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

GRES=""
GRES_TYPES=""
if [ "$GPUS" -gt 0 ]; then
  # device nodes that look like NVIDIA GPUs to slurmd, so Slurm allocates them and sets CUDA_VISIBLE_DEVICES
  mkdir -p "$DIR/dev"
  for i in $(seq 0 $((GPUS - 1))); do [ -e "$DIR/dev/nvidia$i" ] || mknod "$DIR/dev/nvidia$i" c 195 "$i"; done
  printf 'AutoDetect=off\nNodeName=localhost Name=gpu Type=fake File=%s/dev/nvidia[0-%d]\n' "$DIR" $((GPUS - 1)) \
    > "$DIR/gres.conf"
  GRES="Gres=gpu:fake:$GPUS"
  GRES_TYPES="GresTypes=gpu"
fi
MEM=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) * 8 / 10 ))
cat > "$DIR/slurm.conf" <<CONF
ClusterName=glue-bench-test
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=cred_expire=10
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
ReturnToService=2
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MaxArraySize=10001
InactiveLimit=0
KillWait=10
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=60
Waittime=0
$GRES_TYPES
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$MEM $GRES State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$DIR/slurm.conf"
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF" -N localhost
for _ in $(seq 300); do
  sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)' && break
  sleep 0.1
done
if ! sinfo -h -o '%T' | grep -qE '^(idle|mixed|allocated)'; then
  echo "slurm did not come up; logs:" >&2
  tail -n 20 "$DIR"/log/*.log >&2
  exit 1
fi
echo "slurm is up: export SLURM_CONF=$SLURM_CONF"
