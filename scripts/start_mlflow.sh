#!/usr/bin/env bash
# The team tracking server, configured by conf/server.yaml.
#   scripts/start_mlflow.sh                 start in the foreground (Ctrl-C stops it)
#   scripts/start_mlflow.sh --background    start detached, wait for /health
#   scripts/start_mlflow.sh --port 5001     another port (works with every form)
#   scripts/start_mlflow.sh --status        running and healthy? (exit 0, else non-zero)
#   scripts/start_mlflow.sh --stop          stop the background server
# Extra key=value arguments override conf/server.yaml, e.g. artifacts_destination=s3://b/p
# Passwords come from the environment, never from arguments (`ps` shows those): PGPASSWORD
# or ~/.pgpass for PostgreSQL, LOGREG_SERVER_ADMIN_PASSWORD_FILE for auth=true's admin.
# See docs/team-server.md.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python}" -m logistic_regression.server "$@"
