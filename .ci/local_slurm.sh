#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for tests/test_slurm.py (docs/cluster.md, "A local
# cluster, for the tests"). Needs root and Debian's packages (installed here if missing).
#
#   .ci/local_slurm.sh        # idempotent: a second run finds the daemons up and only waits
#   LOCAL_SLURM_READY_TIMEOUT_S=120 .ci/local_slurm.sh   # wait longer for the node (default 60)
#
# Like a site without slurmdbd, it has no accounting (AccountingStorageType=none), so the
# profile must poll job states with squeue. No systemd and no cgroups: the daemons are
# started directly, processes are tracked by /proc (proctrack/linuxproc), tasks are not
# bound (task/none). Two partitions on the one node, `cpu` and `gpu`, exercise the
# profile's CPU/GPU split; one GRES gpu per CPU (each a link to /dev/null) makes `--gpus=1`
# schedulable on a machine without GPUs while letting GPU jobs fill every CPU.
set -euo pipefail

readonly CPU_PARTITION=cpu
readonly GPU_PARTITION=gpu
readonly READY_TIMEOUT_S=${LOCAL_SLURM_READY_TIMEOUT_S:-60}
readonly CONF_DIR=/etc/slurm
readonly LOG_DIR=/var/log/slurm
readonly STATE_DIR=/var/lib/slurm
readonly FAKE_GPU_DIR=/run/local_slurm_gpus

fail() {
    echo "local_slurm.sh: $*" >&2
    exit 1
}

[[ $(id -u) -eq 0 ]] || fail "run as root: it installs packages and starts munged, slurmctld and slurmd"

install_packages() {
    local missing=()
    command -v munged >/dev/null || missing+=(munge)
    command -v slurmctld >/dev/null || missing+=(slurmctld)
    command -v slurmd >/dev/null || missing+=(slurmd)
    command -v sbatch >/dev/null || missing+=(slurm-client)
    ((${#missing[@]} == 0)) && return
    echo "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
        { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } ||
        fail "apt-get could not install ${missing[*]}"
}

config_changed=false

# Writes $2 to $1 unless it already holds exactly that.
write_if_changed() {
    if [[ -f $1 ]] && [[ $(cat "$1") == "$2" ]]; then
        return
    fi
    printf '%s\n' "$2" >"$1"
    config_changed=true
}

write_config() {
    local node cpus memory_mb gpu
    node=$(hostname -s)
    cpus=$(nproc)
    # slurmd drains a node configured with more memory than it measures: take its measure.
    memory_mb=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
    [[ -n $memory_mb ]] || fail "slurmd -C did not report RealMemory"
    mkdir -p "$CONF_DIR" "$LOG_DIR" "$STATE_DIR/slurmctld" "$STATE_DIR/slurmd"
    chown slurm:slurm "$LOG_DIR" "$STATE_DIR/slurmctld"

    write_if_changed "$CONF_DIR/slurm.conf" "# Written by .ci/local_slurm.sh: a one-node cluster without accounting.
ClusterName=local
SlurmctldHost=$node(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=$STATE_DIR/slurmctld
SlurmdSpoolDir=$STATE_DIR/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=1000
# A request no partition can satisfy fails at submission instead of pending forever.
EnforcePartLimits=ALL
# Without accounting, finished jobs are known only while slurmctld keeps them: long enough
# for squeue polling and for the test to read back each job's partition.
MinJobAge=3600
GresTypes=gpu
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory_mb Gres=gpu:$cpus State=UNKNOWN
PartitionName=$CPU_PARTITION Nodes=$node Default=YES MaxTime=INFINITE State=UP
PartitionName=$GPU_PARTITION Nodes=$node MaxTime=INFINITE State=UP"

    # slurmd counts a gpu only with a device file, and refuses the same name twice.
    mkdir -p "$FAKE_GPU_DIR"
    for ((gpu = 0; gpu < cpus; gpu++)); do
        ln -sfn /dev/null "$FAKE_GPU_DIR/gpu$gpu"
    done
    write_if_changed "$CONF_DIR/gres.conf" "NodeName=$node Name=gpu File=$FAKE_GPU_DIR/gpu[0-$((cpus - 1))]"
}

start_munged() {
    munge -n >/dev/null 2>&1 && return
    if [[ ! -s /etc/munge/munge.key ]]; then
        mungekey --create --keyfile=/etc/munge/munge.key
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    mkdir -p /run/munge
    chown munge:munge /run/munge
    echo "starting munged"
    runuser -u munge -- munged
    munge -n >/dev/null || fail "munged does not answer (see /var/log/munge/munged.log)"
}

daemon_running() {
    [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

start_slurm_daemons() {
    if ! daemon_running /run/slurmctld.pid; then
        echo "starting slurmctld"
        slurmctld || fail "slurmctld did not start (see $LOG_DIR/slurmctld.log)"
    fi
    if ! daemon_running /run/slurmd.pid; then
        echo "starting slurmd"
        slurmd || fail "slurmd did not start (see $LOG_DIR/slurmd.log)"
    fi
}

# Ready: the node accepts jobs (idle, or busy with jobs when the cluster was already up).
wait_until_ready() {
    local node state deadline=$((SECONDS + READY_TIMEOUT_S))
    node=$(hostname -s)
    while ((SECONDS < deadline)); do
        state=$(sinfo --noheader --nodes="$node" --partition="$CPU_PARTITION" --format=%T 2>/dev/null || true)
        case $state in
            idle | mixed | allocated | completing)
                echo "local SLURM cluster ready: node $node $state, partitions $CPU_PARTITION and $GPU_PARTITION"
                return
                ;;
        esac
        sleep 1
    done
    fail "node $node is not idle after ${READY_TIMEOUT_S}s (state: '${state:-no answer}').
$(sinfo --list-reasons 2>&1 || true)
See $LOG_DIR/slurmctld.log and $LOG_DIR/slurmd.log."
}

install_packages
write_config
start_munged
if $config_changed && daemon_running /run/slurmctld.pid; then
    echo "configuration changed: reconfiguring the running cluster"
    scontrol reconfigure
fi
start_slurm_daemons
wait_until_ready
