#!/usr/bin/env bash
# Run unicorn-ansible's test suite on this machine: installs what the tests need
# (system packages for the SSH testbed when run as root, a virtual environment
# with the package and its test extras), checks the code with ruff and mypy, then runs pytest.
# Extra arguments go to pytest.
#
#   bash scripts/test.sh          the whole suite; as root it first installs the missing apt packages
#                                 and container set-up (.ci/testbed-deps.sh; README's "Set up" lists them)
#   bash scripts/test.sh --fast   unit and local end-to-end tests only: no root needed, no apt, no
#                                 testbed (the SSH tests are not collected); what a laptop can run
set -euo pipefail
cd "$(dirname "$0")/.."

fast=0
args=()
for arg in "$@"; do
    if [ "$arg" = "--fast" ]; then fast=1; else args+=("$arg"); fi
done
set -- ${args[@]+"${args[@]}"}

if [ "$fast" = 0 ] && [ "$(id -u)" = 0 ] && [ -x .ci/testbed-deps.sh ]; then
    .ci/testbed-deps.sh
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# the docs extra too: tests/unit/test_docs.py builds the docs site with mkdocs build --strict
.venv/bin/python -m pip install --quiet -e '.[test,docs]'

# The code stays clean: lint and type checks first, then the suite.
.venv/bin/ruff check unicorn_ansible tests bench roles
.venv/bin/mypy unicorn_ansible

if [ "$fast" = 1 ]; then
    exec .venv/bin/python -m pytest tests/unit tests/e2e_local "$@"
fi
exec .venv/bin/python -m pytest "$@"
