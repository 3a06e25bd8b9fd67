#!/usr/bin/env bash
# Install and run the checks: ruff, then the test suite against real PostgreSQL
# (DATABASE_URL's server when set, else the embedded one). Extra arguments go to pytest.
source "$(dirname "$0")/scripts/bootstrap.sh"
ruff check .
ruff format --check .
exec python -m pytest "$@"
