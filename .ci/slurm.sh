#!/usr/bin/env bash
# A throwaway one-node SLURM cluster on localhost for the real-scheduler tests (tests/slurm.py).
#   .ci/slurm.sh start DIR   -> installs slurm-wlm, slurmdbd, munge and mariadb-server if missing,
#                               writes DIR/slurm.conf, starts munged, MariaDB, slurmdbd, slurmctld and
#                               slurmd (as root), waits for the node to be idle, prints the slurm.conf
#                               path (export it as SLURM_CONF)
#   .ci/slurm.sh stop DIR    -> cancels every job, stops the daemons (by their pid files), removes DIR
# Used by .ci/run and by the tests' fallback fixture when no SLURM_CONF is given.
#
# Everything is private to DIR: its own munge key and socket (AuthInfo=socket=...), free ports, state,
# spool, database and logs, so it never touches a machine's own /etc/slurm, munge or MySQL. Works
# without systemd and without cgroup plugins: ProctrackType=proctrack/linuxproc (jobs tracked by
# process tree), TaskPlugin=task/none. Accounting is real (slurmdbd on a private MariaDB) because
# hydra-submitit-launcher learns that a task ended without a result (cancelled, failed, node failure)
# only from `sacct`: without accounting a multirun waits forever for a cancelled task.
# `squeue -t all` also shows recently ended tasks (MinJobAge=600 s).
set -euo pipefail
cmd=${1:?start|stop}
dir=${2:?DIR}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
pid_of() { [ -s "$dir/$1.pid" ] && cat "$dir/$1.pid"; }
fail() { echo "slurm.sh: $1" >&2; for f in "${@:2}"; do [ -f "$f" ] && tail -20 "$f" >&2; done; exit 1; }

case "$cmd" in
  start)
    [ "$(id -u)" = 0 ] || { echo "slurm.sh: start needs root (slurmd launches the jobs)" >&2; exit 3; }
    if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null \
       || ! command -v slurmdbd >/dev/null || ! command -v mariadbd >/dev/null; then
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm slurmdbd munge mariadb-server >/dev/null
    fi
    mkdir -p "$dir"/{state,spool,munge}
    dir=$(cd "$dir" && pwd)
    chmod 755 "$dir"; chmod 700 "$dir/munge"

    # munge: a private key and socket (munged refuses a key readable by group or others)
    dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$dir/munge/munge.key"
    munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
      --pid-file="$dir/munged.pid" --log-file="$dir/munged.log" --seed-file="$dir/munge/munge.seed" \
      || fail "munged did not start" "$dir/munged.log"
    chmod 755 "$dir/munge"   # clients (sbatch, squeue) need the socket

    # accounting: a private MariaDB (root over its socket; a `slurm` user for slurmdbd over TCP)
    db_port=$(free_port); dbd_port=$(free_port); ctl_port=$(free_port); d_port=$(free_port)
    mariadb-install-db --user=root --datadir="$dir/mysql" --skip-test-db --auth-root-authentication-method=socket \
      >"$dir/mariadb-install.log" 2>&1 || fail "mariadb-install-db failed" "$dir/mariadb-install.log"
    setsid mariadbd --no-defaults --user=root --datadir="$dir/mysql" --socket="$dir/mysql.sock" --port="$db_port" \
      --bind-address=127.0.0.1 --pid-file="$dir/mariadbd.pid" --log-error="$dir/mariadbd.log" \
      --innodb-buffer-pool-size=64M --innodb-lock-wait-timeout=900 --skip-log-bin </dev/null >/dev/null 2>&1 &
    sql() { mariadb --no-defaults --socket="$dir/mysql.sock" -u root -e "$1"; }
    for _ in $(seq 60); do sql 'select 1' >/dev/null 2>&1 && break; sleep 1; done
    sql "CREATE DATABASE slurm_acct_db; CREATE USER 'slurm'@'%' IDENTIFIED BY 'slurm';
         GRANT ALL ON slurm_acct_db.* TO 'slurm'@'%';" || fail "MariaDB did not start" "$dir/mariadbd.log"
    cat >"$dir/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
DbdHost=localhost
DbdPort=$dbd_port
SlurmUser=root
PidFile=$dir/slurmdbd.pid
LogFile=$dir/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$db_port
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$dir/slurmdbd.conf"   # slurmdbd refuses a readable one (it holds the password)
    export SLURM_CONF="$dir/slurm.conf"   # slurmdbd reads slurmdbd.conf next to it
    slurmdbd </dev/null >/dev/null 2>&1 || fail "slurmdbd did not start" "$dir/slurmdbd.log"

    # the node as slurmd sees it (CPUs, sockets, cores, memory), renamed localhost
    node=$(slurmd -C | head -1 | sed -E 's/^NodeName=[^ ]+ //')
    cat >"$dir/slurm.conf" <<EOF
# written by .ci/slurm.sh: a one-node CI cluster
ClusterName=xlexpci
SlurmctldHost=localhost
SlurmctldPort=$ctl_port
SlurmdPort=$d_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$dbd_port
AccountingStoragePass=$dir/munge/munge.socket
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
MpiDefault=none
ReturnToService=2
KillWait=5
MinJobAge=600
InactiveLimit=0
NodeName=localhost NodeAddr=127.0.0.1 $node State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
    for _ in $(seq 30); do sacctmgr -i add cluster xlexpci >/dev/null 2>&1 && break; sleep 1; done
    sacctmgr -n list cluster format=cluster 2>/dev/null | grep -q xlexpci || fail "slurmdbd does not answer" "$dir/slurmdbd.log"
    slurmctld -f "$SLURM_CONF" </dev/null >/dev/null 2>&1 || fail "slurmctld did not start" "$dir/slurmctld.log"
    slurmd -f "$SLURM_CONF" -N localhost </dev/null >/dev/null 2>&1 || fail "slurmd did not start" "$dir/slurmd.log"
    state=""
    for _ in $(seq 60); do
      state=$(sinfo -h -N -o %t 2>/dev/null || true)
      [ "$state" = idle ] && { echo "$SLURM_CONF"; exit 0; }
      sleep 1
    done
    fail "the node is not idle after 60 s (sinfo: ${state:-no answer})" "$dir/slurmctld.log" "$dir/slurmd.log"
    ;;
  stop)
    if [ -f "$dir/slurm.conf" ]; then
      export SLURM_CONF="$dir/slurm.conf"
      if pid_of slurmctld >/dev/null; then
        scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
        for _ in $(seq 15); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 1; done
      fi
    fi
    for daemon in slurmd slurmctld slurmdbd mariadbd munged; do
      if pid=$(pid_of "$daemon"); then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -9 "$pid" 2>/dev/null || true
      fi
    done
    rm -rf "$dir"
    ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
