#!/usr/bin/env bash
# The README's first command: install deploy, then do its main job on the built-in example app
# (playbooks/flaskr): render the production configs, run the checklist, boot a local Debian host,
# prepare it, push the app with HTTPS from a local ACME server, and ask the site for /health.
# Run as root on Debian 12 (the sandbox host needs systemd-nspawn); 'deploy sandbox down' cleans up.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
out="${TMPDIR:-/tmp}/deploy-quickstart"

say() { printf '\n\033[1m== %s ==\033[0m\n' "$*"; }

say "install deploy"
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends debootstrap systemd-container iproute2 \
    openssh-client openssl ca-certificates pebble git rsync curl >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -e "$repo"
deploy --version

cd "$repo/playbooks/flaskr"
say "render the production configs"
deploy render --out "$out/rendered"

say "check the production checklist"
deploy check

if [ "$(id -u)" -ne 0 ]; then
  echo "The sandbox host needs root (systemd-nspawn): run this script as root to push the app."
  exit 0
fi

# The app's secret stays in this shell's environment: deploy writes it to the host's env file
# (mode 0600) and never prints it.
SECRET_KEY="$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
export SECRET_KEY

say "boot a local Debian 12 host"
deploy sandbox up --hosts 1
address="$(deploy sandbox list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["hosts"][0]["address"])')"

say "prepare it: user, folders, Nginx, systemd, HTTPS"
deploy setup -e sandbox

say "push the app"
deploy push -e sandbox

say "ask the site"
root="$(deploy sandbox list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["acme"]["root"])')"
curl -sS --cacert "$root" --resolve "flaskr.example.com:443:$address" https://flaskr.example.com/health
echo
deploy status -e sandbox

say "done"
echo "The example app is live on $address. Try: deploy push -e sandbox --dry-run, deploy rollback -e sandbox,"
echo "deploy check --live -e sandbox. Remove the host with: deploy sandbox down"
