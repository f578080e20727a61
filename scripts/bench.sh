#!/usr/bin/env bash
# Benchmarks, as recorded in docs/PERFORMANCE.md:
#   1. builds the release provider binary,
#   2. runs the plugin-protocol bench (benches/protocol.rs) against it:
#      spawn → handshake, gRPC round trips, Shutdown, memory,
#   3. times `terraform plan` of 1 and of 50 aienv_gpu_workstation resources
#      against a local moto EC2 emulator (AIENV_BENCH_RUNS runs each, default 3;
#      the median is reported; hyperfine is used when installed), and of the 50
#      again with -parallelism=1 to show how much the plan-time EC2 calls overlap.
# Prints Markdown with the machine facts. Needs what scripts/demo.sh needs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
RUNS=${AIENV_BENCH_RUNS:-3}
# "resources:parallelism" per measured plan; the first two give the per-resource cost.
PLANS=(1:10 50:10 50:1)

bash scripts/install-tools.sh >&2
cargo build --release --locked --bin terraform-provider-aienv >&2
BIN="$ROOT/target/release/terraform-provider-aienv"
TF="$ROOT/tools/bin/terraform"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/aienv-bench.XXXXXX")
MOTO_PID=""
cleanup() {
  if [ -n "$MOTO_PID" ]; then
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "## Machine"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "- CPU: $(nproc) × $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "- memory: $(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
echo "- kernel: $(uname -sr)"
echo "- $(rustc --version)"
echo "- $("$TF" version | head -n1), moto $("$ROOT/tools/moto-venv/bin/python" -c 'from importlib.metadata import version; print(version("moto"))')"
echo "- provider binary: $(stat -c %s "$BIN") bytes (release, debuginfo stripped)"
# Other work on the machine skews the figures; the load average shows it.
echo "- load average (1/5/15 min) before the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

# --- 1. plugin protocol ----------------------------------------------------------
AIENV_PROVIDER_BIN="$BIN" cargo bench --locked --bench protocol 2>"$WORK/bench.log" ||
  { cat "$WORK/bench.log" >&2; exit 1; }
echo

# --- 2. terraform plan against moto ------------------------------------------------
# Started like tests/support/moto.rs starts it.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
MOTO_LOG="$WORK/moto.log"
env -u MOTO_EC2_LOAD_DEFAULT_AMIS \
  MOTO_PORT="$PORT" \
  MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION=true \
  MOTO_ENABLE_AMI_VALIDATION=true \
  MOTO_ENABLE_KEYPAIR_VALIDATION=true \
  MOTO_AMIS_PATH="$ROOT/tests/fixtures/moto-amis.json" \
  PYTHONUNBUFFERED=1 \
  "$ROOT/tools/moto-venv/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$MOTO_LOG" 2>&1 &
MOTO_PID=$!
# Ready once an EC2 call answers; that call also loads the AMI fixture for us-east-1.
ready=""
for _ in $(seq 1 100); do
  if curl -sf -o /dev/null -X POST "http://127.0.0.1:$PORT/" \
    -H 'Content-Type: application/x-www-form-urlencoded; charset=utf-8' \
    -H 'Authorization: AWS4-HMAC-SHA256 Credential=bench/20250101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0' \
    --data 'Action=DescribeRegions&Version=2016-11-15'; then
    ready=1
    break
  fi
  sleep 0.2
done
[ -n "$ready" ] || { echo "moto_server did not start; log:" >&2; cat "$MOTO_LOG" >&2; exit 1; }

PLUGIN_DIR="$WORK/plugins/registry.terraform.io/aienv/aienv/0.1.0/linux_amd64"
mkdir -p "$PLUGIN_DIR"
cp "$BIN" "$PLUGIN_DIR/terraform-provider-aienv_v0.1.0"
: >"$WORK/terraformrc"
export TF_CLI_CONFIG_FILE="$WORK/terraformrc" CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
unset TF_LOG TF_LOG_PROVIDER

now_ns() { date +%s%N; }
# EC2 requests moto has logged so far (werkzeug logs one line per request).
requests() { grep -c '"POST / HTTP' "$MOTO_LOG" || true; }

echo "### terraform plan against moto (${RUNS} runs each, no state)"
echo
echo "| aienv_gpu_workstation resources | -parallelism | runs (s) | median (s) | EC2 requests per plan |"
echo "|---:|---:|---|---:|---:|"
declare -A MEDIAN
for spec in "${PLANS[@]}"; do
  n=${spec%%:*}
  par=${spec##*:}
  dir="$WORK/plan-$n"
  mkdir -p "$dir"
  cat >"$dir/main.tf" <<EOF
terraform {
  required_providers {
    aienv = { source = "aienv/aienv" }
  }
}

provider "aienv" {
  aws {
    region   = "us-east-1"
    endpoint = "http://127.0.0.1:$PORT"
  }
}

resource "aienv_gpu_workstation" "ws" {
  count         = $n
  name          = "ws-\${count.index}"
  gpu           = "T4"
  allowed_cidrs = ["203.0.113.0/24"]
}
EOF
  if [ ! -d "$dir/.terraform" ]; then
    (cd "$dir" && "$TF" init -input=false -no-color -plugin-dir="$WORK/plugins" >"$dir/init.log" 2>&1) ||
      { cat "$dir/init.log" >&2; exit 1; }
  fi

  before=$(requests)
  plan_cmd="cd '$dir' && '$TF' plan -input=false -no-color -parallelism=$par >'$dir/plan.log' 2>&1"
  times=()
  if command -v hyperfine >/dev/null 2>&1; then
    hyperfine --style none --runs "$RUNS" --export-json "$dir/hyperfine.json" "$plan_cmd" >&2
    mapfile -t times < <(python3 -c 'import json,sys; [print("%.3f" % t) for t in json.load(open(sys.argv[1]))["results"][0]["times"]]' "$dir/hyperfine.json")
  else
    for _ in $(seq 1 "$RUNS"); do
      t0=$(now_ns)
      bash -c "$plan_cmd" || { cat "$dir/plan.log" >&2; exit 1; }
      t1=$(now_ns)
      times+=("$(awk -v ns=$((t1 - t0)) 'BEGIN { printf "%.3f", ns / 1e9 }')")
    done
  fi
  grep -q "Plan: $n to add, 0 to change, 0 to destroy" "$dir/plan.log" ||
    { echo "unexpected plan output for $n resources:" >&2; cat "$dir/plan.log" >&2; exit 1; }
  per_plan=$(( ($(requests) - before) / RUNS ))
  MEDIAN[$spec]=$(printf '%s\n' "${times[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
  echo "| $n | $par | ${times[*]} | ${MEDIAN[$spec]} | $per_plan |"
done
echo
awk -v a="${MEDIAN[${PLANS[0]}]}" -v b="${MEDIAN[${PLANS[1]}]}" \
  -v na="${PLANS[0]%%:*}" -v nb="${PLANS[1]%%:*}" 'BEGIN {
  printf "Marginal plan time per resource: (%.3f s - %.3f s) / %d = %.1f ms\n", b, a, nb - na, (b - a) * 1000 / (nb - na)
}'
echo
echo "Load average (1/5/15 min) after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
