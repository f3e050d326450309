#!/usr/bin/env bash
# A two-node Ray cluster on one machine, with the service deployed on it: the step between
# `recsys serve` (a single-node Ray) and KubeRay (deploy/kuberay/README.md).
#
#   deploy/local_cluster.sh up                   start the head and a second ("worker") node
#   deploy/local_cluster.sh deploy [ARG=VALUE..] serve configs/serve.yaml on it (ARGs: Settings
#                                                fields for the application, e.g. model_uri=DIR)
#   deploy/local_cluster.sh status               nodes, and each replica with the node it is on
#   deploy/local_cluster.sh stop-worker          `ray stop` of the worker node only (SIGTERM to
#                                                its processes, SIGKILL after a grace period)
#   deploy/local_cluster.sh kill-worker          kill -9 of the worker node's raylet only
#   deploy/local_cluster.sh down                 stop both nodes
#
# Each node has its own --temp-dir under $RECSYS_CLUSTER_DIR, so one node can be stopped alone
# (plain `ray stop` would stop every Ray process on the machine, other clusters' too), its own
# logical resources ({"head": 1} / {"worker_node": 1}) and a node label (recsys-node=head /
# recsys-node=worker). `deploy` writes $RECSYS_CLUSTER_DIR/serve.yaml from configs/serve.yaml
# with the model replicas preferring the worker node and the ingress the head
# (model_node_labels / ingress_node_labels: a replica lost with its node is re-placed on the
# other), the proxy on the head only (the nodes share one machine, so one HTTP port), and
# the HTTP port $RECSYS_CLUSTER_HTTP_PORT (default: a free port; it is printed).
#
# Environment: RECSYS_CLUSTER_DIR (default /tmp/recsys-cluster; keep it short, Ray's socket
# paths live under it), RECSYS_CLUSTER_HEAD_CPUS / RECSYS_CLUSTER_WORKER_CPUS (logical CPUs,
# default 2 each), RECSYS_CLUSTER_HTTP_PORT, RECSYS_CLUSTER_CONFIG (default configs/serve.yaml),
# RECSYS_CLUSTER_GRACE_S (stop-worker's grace period, default 10). RECSYS_* variables set for
# `up` reach every replica (e.g. RECSYS_DATABASE_URL=postgresql://...). The Ray dashboard runs
# on the head (a free port, 127.0.0.1): Ray's state API (replicas' nodes) and `serve status`
# need it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${RECSYS_CLUSTER_BIN:-$ROOT/.venv/bin}
[ -x "$BIN/ray" ] || BIN=$(dirname "$(command -v ray)")
DIR=${RECSYS_CLUSTER_DIR:-/tmp/recsys-cluster}
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-disabled}
export RAY_USAGE_STATS_ENABLED=0

free_ports() {  # N distinct free TCP ports on 127.0.0.1
  "$BIN/python" - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

address() {
  [ -f "$DIR/address" ] || { echo "no cluster under $DIR: run '$0 up' first" >&2; exit 1; }
  cat "$DIR/address"
}

node_pids() {  # every process of one node: those naming its temp dir, and their descendants
  local -a todo
  local seen=" " pid
  read -r -a todo <<<"$(pgrep -f -- "$DIR/$1/" | tr '\n' ' ')"
  while [ "${#todo[@]}" -gt 0 ]; do
    pid=${todo[0]}
    todo=("${todo[@]:1}")
    case "$seen" in *" $pid "*) continue ;; esac
    seen="$seen$pid "
    read -r -a children <<<"$(pgrep -P "$pid" | tr '\n' ' ')"
    todo+=("${children[@]}")
  done
  echo $seen
}

stop_node() {  # what `ray stop` does, for one node's processes only
  local pids grace=${RECSYS_CLUSTER_GRACE_S:-10}
  pids=$(node_pids "$1")
  [ -n "$pids" ] || return 0
  kill -TERM $pids 2>/dev/null || true
  for _ in $(seq $((grace * 10))); do
    # gone, or zombies: exited, not yet reaped by a parent that is stopping too
    ps -o stat= -p "${pids// /,}" | grep -qv '^Z' || return 0
    sleep 0.1
  done
  kill -KILL $pids 2>/dev/null || true
}

start_node() {  # NAME ARGS...: `ray start` with this node's temp dir and its own ports
  local name=$1; shift
  local ports; read -r -a ports <<<"$(free_ports 4)"
  "$BIN/ray" start --temp-dir "$DIR/$name" --node-ip-address 127.0.0.1 \
    --dashboard-agent-listen-port "${ports[0]}" --dashboard-agent-grpc-port "${ports[1]}" \
    --metrics-export-port "${ports[2]}" --runtime-env-agent-port "${ports[3]}" \
    --object-store-memory "${RECSYS_CLUSTER_OBJECT_STORE_BYTES:-300000000}" \
    --disable-usage-stats "$@"
}

up() {
  [ ! -f "$DIR/address" ] || { echo "a cluster is already up under $DIR ('$0 down')" >&2; exit 1; }
  mkdir -p "$DIR"
  local ports; read -r -a ports <<<"$(free_ports 3)"
  start_node head --head --port "${ports[0]}" --ray-client-server-port "${ports[1]}" \
    --include-dashboard true --dashboard-host 127.0.0.1 --dashboard-port "${ports[2]}" \
    --num-cpus "${RECSYS_CLUSTER_HEAD_CPUS:-2}" --resources '{"head": 1}' \
    --labels recsys-node=head
  echo "127.0.0.1:${ports[0]}" >"$DIR/address"
  echo "http://127.0.0.1:${ports[2]}" >"$DIR/dashboard"
  start_node worker --address "127.0.0.1:${ports[0]}" \
    --num-cpus "${RECSYS_CLUSTER_WORKER_CPUS:-2}" --resources '{"worker_node": 1}' \
    --labels recsys-node=worker
  echo "cluster up: address $(address), dashboard $(cat "$DIR/dashboard")"
}

deploy() {
  local config=$DIR/serve.yaml port=${RECSYS_CLUSTER_HTTP_PORT:-$(free_ports 1)}
  "$BIN/python" - "${RECSYS_CLUSTER_CONFIG:-$ROOT/configs/serve.yaml}" "$config" "$port" "$@" \
    <<'EOF'
import sys

import yaml

source, out, port, *pairs = sys.argv[1:]
config = yaml.safe_load(open(source))
config["proxy_location"] = "HeadOnly"  # both nodes are on this machine: one HTTP port
config["http_options"]["port"] = int(port)
app = config["applications"][0]
app["args"]["model_node_labels"] = {"recsys-node": "worker"}
app["args"]["ingress_node_labels"] = {"recsys-node": "head"}
for pair in pairs:
    key, sep, value = pair.partition("=")
    if not sep:
        sys.exit(f"deploy arguments are FIELD=VALUE (serving.settings.Settings fields): {pair!r}")
    app["args"][key] = yaml.safe_load(value)  # numbers, booleans, {"json": "maps"} as such
with open(out, "w") as file:
    yaml.safe_dump(config, file, sort_keys=False)
EOF
  echo "$port" >"$DIR/http_port"
  "$BIN/serve" run "$config" --address "$(address)" --non-blocking
  echo "deploying http://127.0.0.1:$port (config $config); ready when /readyz answers 200"
}

status() {
  RAY_ADDRESS=$(address) "$BIN/python" - <<'EOF'
import ray
from ray import serve
from ray.util.state import list_actors

ray.init(logging_level="ERROR")
for node in ray.nodes():
    state = "alive" if node["Alive"] else "dead"
    print(f"node {node['NodeID'][:12]} {state} labels={node.get('Labels', {})}")
for name, app in serve.status().applications.items():
    print(f"application {name}: {app.status}")
    for deployment, info in app.deployments.items():
        print(f"  {deployment}: {info.status} {dict(info.replica_states)}")
for actor in list_actors(filters=[("state", "=", "ALIVE")], limit=1000):
    if actor.class_name.startswith("ServeReplica"):
        print(f"  replica {actor.name} on node {actor.node_id[:12]}")
EOF
}

case "${1:-}" in
  up) up ;;
  deploy) shift; deploy "$@" ;;
  status) status ;;
  stop-worker) stop_node worker ;;
  kill-worker)
    for pid in $(pgrep -x raylet || true); do
      if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$DIR/worker/"; then
        kill -KILL "$pid"; echo "killed the worker node's raylet ($pid)"; exit 0
      fi
    done
    echo "no raylet of the worker node under $DIR" >&2; exit 1 ;;
  down) stop_node worker; stop_node head; rm -f "$DIR/address" ;;
  *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
