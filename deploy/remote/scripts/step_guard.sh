# shellcheck shell=sh
exec 8>>"$1" || exit 75
if ! flock -s -w 30 8; then
  echo "deploy: the work lock $1 stayed taken for 30s; the push no longer owns this host"; exit 75
fi
case "$(cat -- "$2" 2>/dev/null)" in
  *'"draining"'*) ok=no ;;
  *"\"remote_pid\": $3,"*) ok=yes ;;
  *) ok=no ;;
esac
# A holder that has just exited stays a zombie until it is reaped, and kill -0 still finds it: a step
# woken by its exit (the shared flock above) would run with no holder left. Its state (field 3) says so.
# shellcheck disable=SC2086  # split on purpose (globbing off), in a subshell: "$@" stays the guard's
state=$(stat=$(cat "/proc/$3/stat" 2>/dev/null) && set -f && set -- ${stat##*") "} && echo "$1")
if [ "$ok" != yes ] || ! kill -0 "$3" 2>/dev/null || [ "${state:-Z}" = Z ]; then
  echo "deploy: this push no longer holds the deploy lock (it was released with 'deploy lock release'," \
    "or the lease ran out); nothing of '$4' ran"
  exit 75
fi
printf '%s %s\n' "$$" "$4" >> "$1"
shift 4
exec "$@"
