#!/usr/bin/env bash
# Run unicorn-ansible's test suite on this machine: installs what the tests need
# (system packages for the SSH testbed when run as root, a virtual environment
# with the package and its test extras), then runs pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ] && [ -x .ci/testbed-deps.sh ]; then
    .ci/testbed-deps.sh
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'

# The code stays clean: lint and type checks first, then the suite.
.venv/bin/ruff check unicorn_ansible tests bench roles
.venv/bin/mypy unicorn_ansible

exec .venv/bin/python -m pytest "$@"
