# shellcheck shell=sh
if [ "$5" = create ]; then mkdir -p -- "${1%/*}" && chmod 0700 -- "${1%/*}" || exit 70; fi
exec 9>>"$1" || exit 70
LOCKINFO=$2 REC=$3 WORK=$6 UNITS=$7
step() {  # the oldest step still running, else the last one started (lines "<pid> <step>")
  s=$( { while read -r pid name; do if kill -0 "$pid" 2>/dev/null; then echo "$name"; fi; done < "$WORK"
        tail -n 1 -- "$WORK" | cut -d ' ' -f 2-; } 2>/dev/null | head -n 1)
  s=$(printf '%s' "$s" | tr -cd 'A-Za-z0-9 _.:-' | head -c 80)
  echo "${s:-unknown}"
}
units() {
  systemctl list-units --no-legend --plain --state=activating,active,deactivating -- "$UNITS" \
    2>/dev/null 9>&- | grep -q .
}
# Who holds the lock, so that `deploy lock release` signals this process and never a later one that
# reuses its pid: the pid, its start time and the SHA-256 of its command line (see HOLDER_CHECK).
# shellcheck disable=SC2086  # split on purpose (globbing off): field 22 of /proc/<pid>/stat
START=$(stat=$(cat /proc/$$/stat) && set -f && set -- ${stat##*") "} && echo "${20}")
CMDLINE=$(sha256sum < /proc/$$/cmdline | cut -d ' ' -f 1)
record() {
  printf '{%s"remote_pid": %s, "remote_start": "%s", "remote_cmdline": "%s", %s\n' \
    "$1" "$$" "$START" "$CMDLINE" "${REC#\{}" > "$LOCKINFO.tmp" && mv -f -- "$LOCKINFO.tmp" "$LOCKINFO"
}
settle() {
  exec 8>>"$WORK" || return 0
  if flock -x -n 8 9>&- && ! units; then return 0; fi
  record "\"draining\": \"$(step)\", "
  flock -x 8 9>&-
  while units; do sleep 1 9>&-; done
}
if ! flock -n 9; then
  case "$(cat -- "$2" 2>/dev/null)" in
    *'"draining"'*) echo "WAITING $(tr -d '\n' < "$2")"; flock -w "$8" 9 ;;
    *) false ;;
  esac || { echo BUSY; cat -- "$2" 2>/dev/null; exit 75; }
fi
exec 8>>"$6" || exit 70
if ! flock -x -n 8 || units; then
  echo "WORKING $(step)"
  waited=0
  until flock -x -n 8 && ! units; do
    if [ "$waited" -ge "$8" ]; then echo "STILLWORKING $(step)"; exit 75; fi
    sleep 1; waited=$((waited + 1))
  done
fi
# The work file's stamp before this holder empties it (told after LOCKED): facts gathered meanwhile (a
# passive probe) are this host's state under the lock only if no holder or step touched it since.
STAMP=$(stat -c '%i %s %.9Y %.9Z' -- "$6" 2>/dev/null)
: > "$6"
exec 8>&-
if [ -s "$2" ]; then echo "STALE $(tr -d '\n' < "$2")"; fi
record ""
echo "LOCKED $$ $STAMP"
# shellcheck disable=SC3045  # the hosts' sh is dash, whose read has -t
while IFS= read -r -t "$4" line; do
  case "$line" in
    release) settle; rm -f -- "$2"; echo RELEASED; exit 0 ;;
    beat) touch -- "$2" ;;
  esac
done
settle
record ""
exit 0
