# shellcheck shell=sh
# What services.postgres finds on its host, one key=value a line (never a password).
# Arguments: ROLE DATABASE RECORDS CREDENTIALS CA_DIR SERVER_TLS
cd /
role=$1 db=$2 records=$3 credentials=$4 ca_dir=$5 server_tls=$6
yes_no() { if "$@" >/dev/null 2>&1; then echo yes; else echo no; fi; }
echo "installed=$(yes_no test -x /usr/bin/pg_lsclusters)"
echo "mem_kb=$(sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /proc/meminfo)"
echo "running=$(yes_no systemctl is-active --quiet postgresql)"
echo "enabled=$(yes_no systemctl is-enabled --quiet postgresql)"
echo "credentials=$(yes_no test -s "$credentials")"
echo "ca=$(yes_no test -s "$ca_dir/ca.key")"
echo "server_cert=$(yes_no test -s "$server_tls/server.crt")"
owner=$(sed -n '1s/^# Written by deploy (services.postgres of \([a-z0-9-]*\)).*/\1/p' /etc/postgresql/*/main/pg_hba.conf 2>/dev/null | head -n 1)
echo "hba_owner=$owner"
for name in postgresql.conf pg_hba.conf; do
  if [ -f "$records/$name" ]; then
    echo "record_$name=$(base64 -w 0 < "$records/$name")"
  fi
done
query() { runuser -u postgres -- psql -XAtq -d postgres -f - 2>/dev/null; }
if [ -x /usr/bin/psql ] && systemctl is-active --quiet postgresql; then
  echo "role=$(printf "SELECT count(*) FROM pg_roles WHERE rolname = '%s';\n" "$role" | query)"
  echo "database=$(printf "SELECT count(*) FROM pg_database WHERE datname = '%s';\n" "$db" | query)"
fi
