# shellcheck shell=sh
# Redis for one app on its service host, as root: sh -c SCRIPT redis-setup MODE APP USER ADDRESS NETWORK DROPIN_SHA
# MODE check: print what differs (one "change=..." line each) and change nothing.
# MODE apply: make it so; the staged drop-in (<drop-in>.new, uploaded before) replaces the drop-in;
#   redis-server restarts when anything changed (Redis has no reload).
# The password is made here (from /dev/urandom) and kept in the credentials file (root 0600); it
# never appears in argv or output: Redis's configuration holds its SHA-256 only.
set -eu
mode=$1 app=$2 user=$3 address=$4 network=$5 dropin_sha=$6
services=/etc/deploy/$app/services
env_file=$services/redis.env
ca=$services/redis-ca
ca_copy=/etc/$app/redis-ca.crt
dropin=$services/redis.conf
users=$services/redis-users.conf
tls=$services/redis-tls
conf=/etc/redis/redis.conf
changes=""

change() {
  changes="$changes${changes:+, }$1"
  [ "$mode" = check ] && echo "change=$1"
  [ "$mode" = apply ]
}

sha() { sha256sum "$1" 2>/dev/null | cut -d ' ' -f 1; }

# One redis-server per host, and redis.conf records each app whose settings it includes: another app's
# and this one's would replace each other's (bind, port, TLS certificate, admin user). Refused, naming it.
others=$(sed -n 's|^include /etc/deploy/\([^/]*\)/services/redis\.conf$|\1|p' "$conf" 2>/dev/null |
  grep -vxF "$app" || true)
if [ -n "$others" ]; then
  for other in $others; do echo "other=$other"; done
  [ "$mode" = check ] && exit 0
  echo "redis-server here already has the settings of another app ($others): nothing was changed"
  exit 1
fi

if ! command -v redis-server >/dev/null 2>&1; then
  if change "install redis-server"; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >/dev/null
  fi
fi

secret() { head -c 64 /dev/urandom | base64 -w 0 | tr -dc 'A-Za-z0-9' | cut -c 1-40; }
known() { sed -n "s/^$1=//p" "$env_file" 2>/dev/null || true; }
if [ -z "$(known REDIS_PASSWORD)" ] || [ -z "$(known REDIS_ADMIN_PASSWORD)" ]; then
  if change "new credentials"; then
    umask 077
    password=$(known REDIS_PASSWORD)
    admin=$(known REDIS_ADMIN_PASSWORD)
    printf 'REDIS_USER=%s\nREDIS_PASSWORD=%s\nREDIS_ADMIN_USER=deploy-admin\nREDIS_ADMIN_PASSWORD=%s\n' \
      "$user" "${password:-$(secret)}" "${admin:-$(secret)}" >"$env_file.tmp"
    unset password admin
    chmod 0600 "$env_file.tmp"
    mv "$env_file.tmp" "$env_file"
  fi
fi

# The ACL: the default user can do nothing; the app's user everything but administration
# (CONFIG, SHUTDOWN, MODULE, ACL, DEBUG, ... : what turns a Redis password into a shell).
users_text() {
  hash=$(known REDIS_PASSWORD | tr -d '\n' | sha256sum | cut -d ' ' -f 1)
  admin=$(known REDIS_ADMIN_PASSWORD | tr -d '\n' | sha256sum | cut -d ' ' -f 1)
  printf '# Written by deploy: the ACL users of the app %s. Passwords: %s (root only).\n' "$app" "$env_file"
  printf 'user default reset off\n'
  # CLIENT LIST is @admin, but RQ's workers list the clients at start (and read only connection facts).
  printf 'user %s reset on #%s ~* &* +@all -@admin +client|list\n' "$user" "$hash"
  printf 'user deploy-admin reset on #%s ~* &* +@all\n' "$admin"
}
if [ ! -f "$env_file" ] || ! users_text | cmp -s - "$users"; then
  if change "ACL users"; then
    users_text >"$users.tmp"
    chown root:redis "$users.tmp"
    chmod 0640 "$users.tmp"
    mv "$users.tmp" "$users"
  fi
fi

if [ "$network" = tls ]; then
  if [ ! -s "$ca/ca.key" ] || [ ! -s "$ca/ca.crt" ]; then
    if change "new CA"; then
      install -d -m 0700 -o root -g root "$ca"
      openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
        -subj "/CN=deploy $app services CA" -keyout "$ca/ca.key" -out "$ca/ca.crt" 2>/dev/null
      chmod 0600 "$ca/ca.key"
    fi
  fi
  if [ ! -f "$ca/ca.crt" ] || ! cmp -s "$ca/ca.crt" "$ca_copy"; then
    if change "CA certificate copy"; then
      install -d -m 0755 -o root -g root "/etc/$app"
      install -m 0644 -o root -g root "$ca/ca.crt" "$ca_copy"
    fi
  fi
  case $address in
    *[!0-9.]*) san="DNS:$address" shown="DNS:$address" ;;
    *) san="IP:$address" shown="IP Address:$address" ;;
  esac
  if ! { [ -s "$tls/redis.key" ] && [ -f "$ca/ca.crt" ] &&
    openssl verify -CAfile "$ca/ca.crt" "$tls/redis.crt" >/dev/null 2>&1 &&
    openssl x509 -in "$tls/redis.crt" -noout -checkend 2592000 >/dev/null &&
    openssl x509 -in "$tls/redis.crt" -noout -ext subjectAltName | grep -qF "$shown"; }; then
    if change "server certificate"; then
      install -d -m 0750 -o root -g redis "$tls"
      ext=$(mktemp)
      printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san" >"$ext"
      openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$address" \
        -keyout "$tls/redis.key.tmp" -out "$tls/redis.csr" 2>/dev/null
      openssl x509 -req -in "$tls/redis.csr" -CA "$ca/ca.crt" -CAkey "$ca/ca.key" -CAcreateserial \
        -days 825 -extfile "$ext" -out "$tls/redis.crt.tmp" 2>/dev/null
      rm -f "$ext" "$tls/redis.csr"
      chown root:redis "$tls/redis.key.tmp" "$tls/redis.crt.tmp"
      chmod 0640 "$tls/redis.key.tmp" "$tls/redis.crt.tmp"
      mv "$tls/redis.key.tmp" "$tls/redis.key"
      mv "$tls/redis.crt.tmp" "$tls/redis.crt"
    fi
  fi
fi

# From none or rdb to aof: a restart with appendonly yes and no AOF yet would start empty. The
# running Redis writes its AOF from memory first (through its unix socket, as deploy's admin user).
aof_on() {
  REDISCLI_AUTH=$(known REDIS_ADMIN_PASSWORD)
  export REDISCLI_AUTH
  cli() { redis-cli --no-auth-warning --user deploy-admin -s /run/redis/redis-server.sock "$@"; }
  if [ "$(cli config set appendonly yes 2>&1)" != OK ]; then
    echo "the running Redis does not turn its AOF on (deploy's admin user through /run/redis/redis-server.sock);"
    echo "nothing was changed: persistence aof would start empty"
    exit 1
  fi
  tries=0
  until cli info persistence | tr -d '\r' | grep -c -e '^aof_enabled:1$' -e '^aof_rewrite_in_progress:0$' \
    -e '^aof_rewrite_scheduled:0$' -e '^aof_last_bgrewrite_status:ok$' | grep -qx 4; do
    tries=$((tries + 1))
    [ "$tries" -lt 600 ] || { echo "Redis has not finished writing its AOF in 10 minutes"; exit 1; }
    sleep 1
  done
  unset REDISCLI_AUTH
  echo "redis-server wrote its AOF from memory before the restart"
}
if [ "$mode" = apply ] && grep -qx 'appendonly no' "$dropin" 2>/dev/null &&
  grep -qx 'appendonly yes' "$dropin.new" 2>/dev/null && systemctl is-active --quiet redis-server; then
  aof_on
fi

if [ "$(sha "$dropin")" != "$dropin_sha" ]; then
  if change "configuration"; then
    chown root:redis "$dropin.new"
    chmod 0640 "$dropin.new"
    mv "$dropin.new" "$dropin"
  fi
fi

if ! grep -qxF "include $dropin" "$conf" 2>/dev/null; then
  if change "include in $conf"; then
    printf '\n# deploy: the settings of the app %s\ninclude %s\n' "$app" "$dropin" >>"$conf"
  fi
fi

enabled=$(systemctl is-enabled redis-server 2>/dev/null || true)
active=$(systemctl is-active redis-server 2>/dev/null || true)
if [ "$mode" = check ]; then
  [ "$enabled" = enabled ] || echo "change=enable redis-server"
  [ "$active" = active ] || echo "change=start redis-server"
  exit 0
fi
[ "$enabled" = enabled ] || systemctl enable --quiet redis-server 2>/dev/null
if [ "$active" != active ]; then
  what="started"
  systemctl start redis-server || what=""
elif [ -n "$changes" ]; then
  what="restarted (Redis has no reload: its clients reconnect)"
  systemctl restart redis-server || what=""
else
  what="running, unchanged"
fi
if [ -z "$what" ]; then
  echo "redis-server failed to start:"
  journalctl -u redis-server -n 20 --no-pager -o cat 2>/dev/null || true
  tail -n 20 /var/log/redis/redis-server.log 2>/dev/null || true
  exit 1
fi
echo "redis-server $what"
