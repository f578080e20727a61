#!/usr/bin/env bash
# The main job on a fresh machine: build the provider, start the local EC2
# emulator (moto), `terraform apply` examples/quickstart against it, print how
# to reach the workstation and what it costs, then destroy it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

bash scripts/install-tools.sh
cargo build --locked --bin terraform-provider-aienv

WORK=$(mktemp -d "${TMPDIR:-/tmp}/aienv-demo.XXXXXX")
MOTO_PID=""
cleanup() {
  [ -n "$MOTO_PID" ] && kill "$MOTO_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# A free loopback port for the emulator.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION=true \
MOTO_ENABLE_AMI_VALIDATION=true \
MOTO_ENABLE_KEYPAIR_VALIDATION=true \
MOTO_AMIS_PATH="$ROOT/tests/fixtures/moto-amis.json" \
  "$ROOT/tools/moto-venv/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$PORT/moto-api/" >/dev/null 2>&1 && break
  sleep 0.2
done

# The provider from this checkout, installed as registry.terraform.io/aienv/aienv.
PLUGIN_DIR="$WORK/plugins/registry.terraform.io/aienv/aienv/0.1.0/linux_amd64"
mkdir -p "$PLUGIN_DIR"
cp target/debug/terraform-provider-aienv "$PLUGIN_DIR/terraform-provider-aienv_v0.1.0"
cp -r examples/quickstart "$WORK/quickstart"
: >"$WORK/terraformrc"

export TF_CLI_CONFIG_FILE="$WORK/terraformrc" CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
export TF_VAR_aws_endpoint="http://127.0.0.1:$PORT"
TF="$ROOT/tools/bin/terraform"
cd "$WORK/quickstart"
"$TF" init -input=false -no-color -plugin-dir="$WORK/plugins" >/dev/null
"$TF" apply -input=false -no-color -auto-approve
echo
echo "== Your workstation (on the local EC2 emulator) =="
echo "SSH:          $("$TF" output -raw ssh_command)"
echo "Jupyter:      $("$TF" output -raw jupyter_url)"
echo "Instance:     $("$TF" output -raw instance_type)"
echo "Hourly cost:  \$$("$TF" output -raw hourly_cost_usd) per hour"
echo
"$TF" destroy -input=false -no-color -auto-approve
echo "Destroyed. Nothing is left on the emulator."
