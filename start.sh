#!/usr/bin/env bash
# The main job: install, prepare the database (embedded unless DATABASE_URL is set),
# refresh the views and open the Dagster UI. Ctrl-C stops everything it started.
source "$(dirname "$0")/scripts/bootstrap.sh"
exec efir-pipeline start "$@"
