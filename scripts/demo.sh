#!/usr/bin/env bash
# make demo: start trainerd on its embedded defaults (data under runs/trainerd), submit
# the example Fashion-MNIST job, follow its logs to the end, print its evaluation, stop
# trainerd (SIGTERM), and exit with the job's outcome.
set -euo pipefail
build=${BUILD_DIR:-build}
port=${TRAINERD_DEMO_PORT:-50051}
root=$(pwd)/runs/trainerd
mkdir -p "$root"
"$build/server/trainerd" --listen "127.0.0.1:$port" --data-root "$root" --metrics-port 0 --http-port 0 \
  2> "$root/trainerd.log" &
daemon=$!
trap 'kill -TERM $daemon 2>/dev/null; wait $daemon 2>/dev/null || true' EXIT
export TRAINER_SERVER=127.0.0.1:$port
# trainer-cli finds the admin token trainerd wrote there on its first start.
export TRAINERD_DATA_ROOT=$root
for _ in $(seq 1 100); do
  "$build/client/trainer-cli" list --limit 1 > /dev/null 2>&1 && break
  sleep 0.1
done
echo "trainerd is up on $TRAINER_SERVER (log: $root/trainerd.log); submitting the example job"
rc=0
"$build/client/trainer-cli" submit examples/fashion-mnist-cnn.yaml --name fashion-mnist-cnn --follow || rc=$?
exit $rc
