#!/bin/bash
# Train one architecture on two machines without a scheduler (docs/training.md, "Several
# machines"): run this script on both machines, from the project folder, with the same HEAD.
#
#   machine A (10.0.0.1):  HEAD=10.0.0.1 docs/slurm/train_two_machines.sh
#   machine B:             HEAD=10.0.0.1 docs/slurm/train_two_machines.sh
#
# HEAD is one of the machines (A here): its torchrun hosts the c10d rendezvous on PORT, which
# the other machine must reach (open the port in the firewall). Which machine gets rank 0 is
# torchrun's choice; the logs say it on every line ("rank R/W host | ...").
set -euo pipefail

: "${HEAD:?set HEAD to the address of the machine that hosts the rendezvous}"
ARCH=${ARCH:-dimn}
PARAMS=${PARAMS:-}
ENV=${ENV:-}                                           # Kedro environment (--env)
NODES=${NODES:-2}
GPUS=${GPUS:-$(nvidia-smi -L 2>/dev/null | wc -l)}   # one process per GPU
GPUS=$(( GPUS > 0 ? GPUS : 1 ))                        # CPU-only machines: one process (gloo)
PORT=${PORT:-29400}
RUN=${RUN:-reid-$ARCH}                                 # the same on both machines

export KEDRO_DISABLE_TELEMETRY=true
# Elastic restarts across nodes: a fresh rendezvous store per restart. torchrun's default keeps
# one store whose old keys a restarted group can read (pytorch/pytorch#135712).
export TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1
export NCCL_DEBUG=${NCCL_DEBUG:-WARN}                  # INFO to see what NCCL picked
# export NCCL_SOCKET_IFNAME=eth0                       # the interface between the machines
# export NCCL_IB_DISABLE=1                             # no InfiniBand between them

# Data: the same project path on both machines, with data/ on shared storage, or
# `dvc pull` run here first (uncomment; the remote is configured in .dvc/config).
# .venv/bin/dvc pull

exec .venv/bin/torchrun \
    --nnodes="$NODES" \
    --nproc-per-node="$GPUS" \
    --rdzv-backend=c10d \
    --rdzv-endpoint="$HEAD:$PORT" \
    --rdzv-id="$RUN" \
    --max-restarts=1 \
    -m reid_pipeline.ddp --pipeline "train_$ARCH" ${ENV:+--env "$ENV"} ${PARAMS:+--params "$PARAMS"}
