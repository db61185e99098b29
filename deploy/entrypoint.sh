#!/bin/sh
# The image's entrypoint. A role (web, worker, loadgen, beat, target, monitor, migrate) runs
# through `manage.py role`, which waits for the database, says what is missing, then execs the same
# command line `manage.py runall` uses for that role. Anything else runs as given
# (`docker compose run web manage.py createsuperuser`, a shell).
set -eu
here="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python}"
case "${1:-}" in
  web|worker|loadgen|beat|target|monitor|migrate)
    exec "$python" "$here/manage.py" role "$@"
    ;;
  manage.py)
    shift
    exec "$python" "$here/manage.py" "$@"
    ;;
  "")
    echo "entrypoint: name a role: web, worker, loadgen, beat, target, monitor or migrate" >&2
    exit 64
    ;;
  *)
    exec "$@"
    ;;
esac
