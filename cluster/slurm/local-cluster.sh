#!/usr/bin/env bash
# A real single-node Slurm (Debian's slurmctld, slurmd, slurm-client, munge) for tests and for
# trying the batch scripts on one machine: no systemd, run as root, everything under one
# directory. `start` prints the `export SLURM_CONF=...` line every client needs; `stop` cancels
# all jobs and ends every daemon it started (by their pid files).
#   bash cluster/slurm/local-cluster.sh start    # eval "$(bash cluster/slurm/local-cluster.sh start)"
#   bash cluster/slurm/local-cluster.sh stop
# TS_SLURM_DIR: where config, state, logs and sockets go (default ${TMPDIR:-/tmp}/tokenswift-slurm).
set -euo pipefail
DIR=${TS_SLURM_DIR:-${TMPDIR:-/tmp}/tokenswift-slurm}
CONF="$DIR/slurm.conf"
die() { echo "local-cluster: $*" >&2; exit 1; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

stop_pidfile() {  # PIDFILE: TERM, then KILL after 10 s
  local f="$1" p
  [ -f "$f" ] || return 0
  p=$(cat "$f" 2>/dev/null || true)
  if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then
    kill "$p" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  fi
  rm -f "$f"
}

start() {
  [ "$(id -u)" -eq 0 ] || die "start needs root (slurmd runs jobs as their users)"
  for b in munged slurmctld slurmd sinfo sbatch; do
    command -v "$b" >/dev/null || die "$b not found: apt-get install slurmctld slurmd slurm-client munge"
  done
  if [ -f "$DIR/run/slurmctld.pid" ] && kill -0 "$(cat "$DIR/run/slurmctld.pid")" 2>/dev/null; then
    echo "export SLURM_CONF=$CONF"
    return 0
  fi
  mkdir -p "$DIR"/{munge,spool/ctld,spool/d,log,run}
  chmod 700 "$DIR/munge"
  [ -f "$DIR/munge/munge.key" ] || { head -c 1024 /dev/urandom >"$DIR/munge/munge.key"; chmod 400 "$DIR/munge/munge.key"; }
  munged --force --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket" \
    --pid-file="$DIR/run/munged.pid" --log-file="$DIR/log/munged.log" \
    --seed-file="$DIR/munge/munged.seed" || die "munged did not start (see $DIR/log/munged.log)"
  local node host
  host=$(hostname -s)
  node=$(slurmd -C | head -1 | sed -E 's/ RealMemory=([0-9]+)//')
  cat >"$CONF" <<CONF
ClusterName=tokenswift
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket,cred_expire=5
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
StateSaveLocation=$DIR/spool/ctld
SlurmdSpoolDir=$DIR/spool/d
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerParameters=batch_sched_delay=0,sched_interval=1
JobRequeue=1
MpiDefault=none
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=600
$node State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF="$CONF"
  slurmctld -f "$CONF" || die "slurmctld did not start (see $DIR/log/slurmctld.log)"
  slurmd -f "$CONF" || die "slurmd did not start (see $DIR/log/slurmd.log)"
  for _ in $(seq 1 300); do
    if sinfo -h -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
      echo "export SLURM_CONF=$CONF"
      return 0
    fi
    sleep 0.1
  done
  die "the node did not come up within 30 s (see $DIR/log/)"
}

stop() {
  if [ -f "$CONF" ]; then
    export SLURM_CONF="$CONF"
    scancel --full --quiet --user=root 2>/dev/null || true
    for _ in $(seq 1 100); do
      [ -z "$(squeue -h 2>/dev/null)" ] && break
      sleep 0.1
    done
  fi
  stop_pidfile "$DIR/run/slurmd.pid"
  stop_pidfile "$DIR/run/slurmctld.pid"
  stop_pidfile "$DIR/run/munged.pid"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) die "usage: local-cluster.sh start|stop" ;;
esac
