# shellcheck shell=sh
# Sets services.postgres up on its host, idempotently; says each change as "changed: ...".
# The role's password is made here and kept in CREDENTIALS (root 0600): it never travels in a command
# line, and SQL reaches psql on its standard input (printf is a shell builtin: no process sees it).
# Arguments: APP ROLE DATABASE RECORDS CREDENTIALS CA_DIR SERVER_TLS TLS(yes|no) ADDRESS ACTION(restart|reload)
set -eu
cd /
umask 077
app=$1 role=$2 db=$3 records=$4 credentials=$5 ca_dir=$6 server_tls=$7 tls=$8 address=$9
shift 9
action=$1
changed=no
say() { echo "changed: $*"; changed=yes; }
psql_postgres() { runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -d postgres -f -; }

version=$(pg_lsclusters -h | awk '$2 == "main" { print $1 }' | tail -n 1)
if [ -z "$version" ]; then
  echo "no 'main' Postgres cluster on this host (pg_lsclusters shows none): create it with pg_createcluster" >&2
  exit 1
fi
conf=/etc/postgresql/$version/main
unit=postgresql@$version-main

if [ "$tls" = yes ]; then
  if [ ! -s "$ca_dir/ca.key" ] || [ ! -s "$ca_dir/ca.crt" ]; then
    mkdir -p "$ca_dir"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 -sha256 \
      -subj "/CN=deploy $app Postgres CA" -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -keyout "$ca_dir/ca.key.new" -out "$ca_dir/ca.crt.new" 2>/dev/null
    mv "$ca_dir/ca.key.new" "$ca_dir/ca.key" && mv "$ca_dir/ca.crt.new" "$ca_dir/ca.crt"
    rm -f "$server_tls/server.crt"
    say "made deploy's CA for Postgres ($ca_dir, root only)"
  fi
  install -d -o postgres -g postgres -m 0700 "$server_tls"
  if ! openssl verify -CAfile "$ca_dir/ca.crt" "$server_tls/server.crt" >/dev/null 2>&1 \
    || ! openssl x509 -in "$server_tls/server.crt" -noout -ext subjectAltName 2>/dev/null \
      | grep -qx " *IP Address:$address"; then
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 -subj "/CN=$address" \
      -addext "subjectAltName=IP:$address" -addext "extendedKeyUsage=serverAuth" \
      -keyout "$server_tls/server.key" -out "$server_tls/server.csr" 2>/dev/null
    openssl x509 -req -in "$server_tls/server.csr" -CA "$ca_dir/ca.crt" -CAkey "$ca_dir/ca.key" \
      -CAcreateserial -CAserial "$ca_dir/ca.srl" -days 825 -sha256 -copy_extensions copyall \
      -out "$server_tls/server.crt" 2>/dev/null
    rm -f "$server_tls/server.csr"
    chown postgres:postgres "$server_tls/server.key" "$server_tls/server.crt"
    chmod 0600 "$server_tls/server.key"
    say "server certificate for $address, signed by deploy's CA"
  fi
fi

install -d -o postgres -g postgres -m 0755 "$conf/conf.d"
put() {
  if ! cmp -s "$1" "$2"; then
    install -o postgres -g postgres -m 0640 "$1" "$2"
    say "$2"
  fi
}
put "$records/postgresql.conf" "$conf/conf.d/deploy-$app.conf"
hba=$conf/pg_hba.conf
if [ -f "$hba" ] && [ ! -e "$hba.before-deploy" ] && ! head -n 1 "$hba" | grep -q '^# Written by deploy'; then
  cp -p "$hba" "$hba.before-deploy"
  say "kept the cluster's own pg_hba.conf as $hba.before-deploy"
fi
put "$records/pg_hba.conf" "$hba"

if ! systemctl is-enabled --quiet postgresql; then
  systemctl enable --quiet postgresql
  say "enabled postgresql (starts at boot)"
fi
if ! systemctl is-active --quiet "$unit"; then
  systemctl start "$unit"
  say "started $unit"
elif [ "$changed" = yes ] && [ "$action" = restart ]; then
  systemctl restart "$unit"
  echo "restarted $unit: the change needs a restart (the app's connections were dropped)"
elif [ "$changed" = yes ]; then
  systemctl reload "$unit"
  echo "reloaded $unit: open connections stay"
fi
systemctl start postgresql
i=0
until runuser -u postgres -- pg_isready -q; do
  i=$((i + 1))
  if [ "$i" -gt 60 ]; then echo "Postgres did not accept connections within 30s" >&2; exit 1; fi
  sleep 0.5
done

new_password=no
if [ ! -s "$credentials" ]; then
  mkdir -p "$(dirname "$credentials")"
  password=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
  printf 'POSTGRES_USER=%s\nPOSTGRES_DB=%s\nPOSTGRES_PASSWORD=%s\n' "$role" "$db" "$password" \
    > "$credentials.new"
  chmod 0600 "$credentials.new"
  mv "$credentials.new" "$credentials"
  new_password=yes
  say "made the password of role $role ($credentials, root 0600)"
fi
password=$(sed -n 's/^POSTGRES_PASSWORD=//p' "$credentials")
# psql's error messages may quote the statement, password included: they are not shown.
with_password() {
  if ! printf "SET password_encryption = 'scram-sha-256';\n%s ROLE \"%s\" LOGIN PASSWORD '%s';\n" \
    "$1" "$role" "$password" | psql_postgres >/dev/null 2>&1; then
    echo "psql could not $1 ROLE $role (its message is hidden: it may quote the password)" >&2
    exit 1
  fi
}
count() { printf "SELECT count(*) FROM %s WHERE %s = '%s';\n" "$1" "$2" "$3" | psql_postgres; }
if [ "$(count pg_roles rolname "$role")" = 0 ]; then
  with_password CREATE
  say "created role $role"
elif [ "$new_password" = yes ]; then
  with_password ALTER
  say "set the password of role $role"
fi
if [ "$(count pg_database datname "$db")" = 0 ]; then
  printf 'CREATE DATABASE "%s" OWNER "%s";\nREVOKE ALL ON DATABASE "%s" FROM PUBLIC;\n' "$db" "$role" "$db" \
    | psql_postgres
  say "created database $db (owner $role)"
fi
if [ "$changed" = no ]; then echo "unchanged"; fi
