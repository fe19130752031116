#!/bin/bash
# Usage: setup.sh BASE -- writes a one-node Slurm config (fake GPUs) under BASE. From the project's shared
# slurm-local recipe (Slurm 22.05, Debian 12): count-only GPU GRES is rejected, so the fake GPUs are device links.
set -euo pipefail
BASE=${1:-${TMPDIR:-/tmp}/slurm-local}
H=$(hostname -s)
mkdir -p "$BASE"/{etc,state,spool,log,run,dev}
ln -sfn /dev/null "$BASE/dev/gpu0"
ln -sfn /dev/zero "$BASE/dev/gpu1"
HW=$(slurmd -C | head -1)
TOPO=$(echo "$HW" | grep -oE 'CPUs=[0-9]+ Boards=[0-9]+ SocketsPerBoard=[0-9]+ CoresPerSocket=[0-9]+ ThreadsPerCore=[0-9]+')
MEM=$(echo "$HW" | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
MEM=$((MEM - 1024))
cat > "$BASE/etc/slurm.conf" <<CONF
ClusterName=testcluster
SlurmctldHost=$H(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool
SlurmctldPidFile=$BASE/run/slurmctld.pid
SlurmdPidFile=$BASE/run/slurmd.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/cgroup
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
ReturnToService=2
KillWait=5
GresTypes=gpu
NodeName=$H NodeAddr=127.0.0.1 $TOPO RealMemory=$MEM Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=$H Default=YES MaxTime=INFINITE State=UP
CONF
cat > "$BASE/etc/gres.conf" <<CONF
AutoDetect=off
NodeName=$H Name=gpu File=$BASE/dev/gpu[0-1]
CONF
cat > "$BASE/etc/cgroup.conf" <<CONF
CgroupPlugin=cgroup/v1
CgroupAutomount=no
ConstrainCores=no
ConstrainRAMSpace=no
ConstrainDevices=no
CONF
