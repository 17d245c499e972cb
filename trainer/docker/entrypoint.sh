#!/bin/sh
# Entrypoint of the paramount-trainer images: runs the trainer under torchrun.
#
#   docker run IMAGE train [trainer options]          torchrun ... -m paramount_trainer train [options]
#   docker run IMAGE make-dataset --out /data/photos  (and validate-log, --version): no torchrun
#
# torchrun is configured from the environment:
#   NPROC_PER_NODE   ranks in this container (default: 1; "gpu" = one per visible GPU)
#   NNODES           nodes, or MIN:MAX for an elastic job (default: 1)
#   RDZV_ENDPOINT    HOST:PORT of the c10d rendezvous (default: none -> a single-node --standalone job)
#   RDZV_ID          job id shared by all nodes (default: paramount; also the records' run_id unless
#                    PARAMOUNT_RUN_ID or --run-id is given)
#   MAX_RESTARTS     torchrun --max-restarts (default: 0)
#   TORCHRUN_ARGS    anything else for torchrun, split on spaces (e.g. "--rdzv-conf join_timeout=900")
#   PARAMOUNT_INSTANCE_TYPE, PARAMOUNT_RUN_ID: read by the trainer itself
# Offline single-node runs need a resolvable hostname: docker run --hostname trainer --add-host trainer:127.0.0.1
set -eu

case "${1:-train}" in
    make-dataset|validate-log|--version|--help|-h)
        exec paramount-trainer "$@" ;;
    train)
        [ "$#" -gt 0 ] && shift ;;
esac

NPROC_PER_NODE="${NPROC_PER_NODE:-1}"
NNODES="${NNODES:-1}"
MAX_RESTARTS="${MAX_RESTARTS:-0}"

if [ -n "${RDZV_ENDPOINT:-}" ]; then
    # shellcheck disable=SC2086  # TORCHRUN_ARGS is meant to split
    exec torchrun --nnodes "$NNODES" --nproc-per-node "$NPROC_PER_NODE" --max-restarts "$MAX_RESTARTS" \
        --rdzv-backend c10d --rdzv-endpoint "$RDZV_ENDPOINT" --rdzv-id "${RDZV_ID:-paramount}" \
        ${TORCHRUN_ARGS:-} -m paramount_trainer train "$@"
fi
# shellcheck disable=SC2086
exec torchrun --standalone --nproc-per-node "$NPROC_PER_NODE" --max-restarts "$MAX_RESTARTS" \
    ${TORCHRUN_ARGS:-} -m paramount_trainer train "$@"
