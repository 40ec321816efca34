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
if [ "$ok" != yes ] || ! kill -0 "$3" 2>/dev/null; then
  echo "deploy: this push no longer holds the deploy lock (it was released with 'deploy lock release'," \
    "or the lease ran out); nothing of '$4' ran"
  exit 75
fi
printf '%s %s\n' "$$" "$4" >> "$1"
shift 4
exec "$@"
