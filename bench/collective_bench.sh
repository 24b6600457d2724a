#!/usr/bin/env bash
# Starts N local ranks of mr_collective_bench on loopback (the torchrun environment by hand) and
# prints rank 0's table. Usage: bench/collective_bench.sh [N=2] [BUILD_DIR=build] [-- bench args]
set -euo pipefail
n=${1:-2}
build=${2:-build}
shift $(( $# >= 2 ? 2 : $# )) || true
[ "${1:-}" = "--" ] && shift
bin="$build/bin/mr_collective_bench"
[ -x "$bin" ] || { echo "build it first: cmake --build $build --target mr_collective_bench" >&2; exit 2; }
port=$(( 29600 + RANDOM % 1000 ))
pids=()
for ((r = 1; r < n; r++)); do
  RANK=$r LOCAL_RANK=$r WORLD_SIZE=$n LOCAL_WORLD_SIZE=$n MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
    "$bin" "$@" & pids+=($!)
done
RANK=0 LOCAL_RANK=0 WORLD_SIZE=$n LOCAL_WORLD_SIZE=$n MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$bin" "$@"
for p in "${pids[@]}"; do wait "$p"; done
