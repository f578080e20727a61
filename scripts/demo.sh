#!/usr/bin/env bash
# The main job on a fresh machine: build the provider, start the local EC2
# emulator (moto) and our fake Compute Engine server, `terraform apply`
# examples/quickstart on each cloud, print how to reach the workstation and
# what it costs, check nothing is left, then destroy it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

bash scripts/install-tools.sh
cargo build --locked -p terraform-provider-aienv --bin terraform-provider-aienv
cargo build --locked -p aienv-fakes --bin fake-gce

WORK=$(mktemp -d "${TMPDIR:-/tmp}/aienv-demo.XXXXXX")
MOTO_PID=""
GCE_PID=""
cleanup() {
  [ -n "$MOTO_PID" ] && kill "$MOTO_PID" 2>/dev/null || true
  [ -n "$GCE_PID" ] && kill "$GCE_PID" 2>/dev/null || true
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

# The fake Compute Engine API (Google Cloud has no emulator of its own).
GCE_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
target/debug/fake-gce --port "$GCE_PORT" >"$WORK/fake-gce.log" 2>&1 &
GCE_PID=$!
for _ in $(seq 1 100); do
  grep -q FAKE_GCE_ENDPOINT "$WORK/fake-gce.log" 2>/dev/null && break
  sleep 0.1
done

# The provider from this checkout, installed as registry.terraform.io/aienv/aienv.
PLUGIN_DIR="$WORK/plugins/registry.terraform.io/aienv/aienv/0.1.0/linux_amd64"
mkdir -p "$PLUGIN_DIR"
cp target/debug/terraform-provider-aienv "$PLUGIN_DIR/terraform-provider-aienv_v0.1.0"
cp -r examples/quickstart "$WORK/quickstart"
: >"$WORK/terraformrc"

export TF_CLI_CONFIG_FILE="$WORK/terraformrc" CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
export TF_VAR_aws_endpoint="http://127.0.0.1:$PORT" TF_VAR_gcp_endpoint="http://127.0.0.1:$GCE_PORT"
TF="$ROOT/tools/bin/terraform"
cd "$WORK/quickstart"
"$TF" init -input=false -no-color -plugin-dir="$WORK/plugins" >/dev/null

for CLOUD in aws gcp; do
  echo
  echo "################ cloud = $CLOUD ################"
  "$TF" apply -input=false -no-color -auto-approve -var "cloud=$CLOUD"
  echo
  echo "== Your $CLOUD workstation (on the local emulator) =="
  echo "SSH:          $("$TF" output -raw ssh_command)"
  echo "Jupyter:      $("$TF" output -raw jupyter_url)"
  echo "Instance:     $("$TF" output -raw instance_type)"
  echo "Hourly cost:  \$$("$TF" output -raw hourly_cost_usd) per hour"
  echo
  "$TF" destroy -input=false -no-color -auto-approve -var "cloud=$CLOUD"
done

# Ask the emulators what is left: nothing.
AWS_LEFT=$("$ROOT/tools/moto-venv/bin/python" - "http://127.0.0.1:$PORT" <<'PY'
import sys, boto3
ec2 = boto3.client("ec2", endpoint_url=sys.argv[1], region_name="us-east-1")
alive = [i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
         if i["State"]["Name"] != "terminated"]
groups = [g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"] if g["GroupName"] != "default"]
vols = [v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]]
keys = [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]]
print(" ".join(alive + groups + vols + keys))
PY
)
GCP_LEFT=$(curl -sf "http://127.0.0.1:$GCE_PORT/compute/v1/projects/my-ml-project/aggregated/instances" | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(" ".join(i["name"] for s in d.get("items", {}).values() for i in s.get("instances", [])))')
if [ -n "$AWS_LEFT$GCP_LEFT" ]; then
  echo "Left behind: aws [$AWS_LEFT] gcp [$GCP_LEFT]" >&2
  exit 1
fi
echo "Destroyed. Nothing is left on either emulator."
