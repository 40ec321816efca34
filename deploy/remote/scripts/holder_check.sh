# shellcheck shell=sh
holder() {
  info=$(cat -- "$1" 2>/dev/null) || return 1
  pid=$(printf '%s\n' "$info" | sed -n 's/.*"remote_pid": \([0-9][0-9]*\).*/\1/p')
  start=$(printf '%s\n' "$info" | sed -n 's/.*"remote_start": "\([0-9][0-9]*\)".*/\1/p')
  sum=$(printf '%s\n' "$info" | sed -n 's/.*"remote_cmdline": "\([0-9a-f]\{64\}\)".*/\1/p')
  # shellcheck disable=SC2015  # any test failing, or echo failing: not a live holder either way
  [ -n "$pid" ] && [ "$pid" != 0 ] && [ -n "$start" ] && [ -n "$sum" ] || { echo "${pid:-0}"; return 1; }
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || { echo "$pid"; return 1; }
  # shellcheck disable=SC2086  # split on purpose (globbing off): field 22 of /proc/<pid>/stat
  now=$(set -f && set -- ${stat##*") "} && echo "${20}")
  cmd=$(sha256sum < "/proc/$pid/cmdline" 2>/dev/null | cut -d ' ' -f 1)
  echo "$pid"
  [ "$now" = "$start" ] && [ "$cmd" = "$sum" ]
}
