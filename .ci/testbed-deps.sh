#!/usr/bin/env bash
# System packages the SSH testbed (and so the test suite) needs on Debian/Ubuntu:
# sshd for each test host, iproute2 for namespaces and links, sudo for become,
# ping for the experiments, python3-venv for node environments, chromium for the
# report's browser test, pypy3 as a host Python of another version; tcpdump, tshark,
# traceroute, iperf3 and dnsutils for the netunicorn-library conformance suite. Installs only what
# is missing; needs root. It changes nothing else: the machine's own ssh service is left as it is
# (each testbed host runs an sshd of its own, in its own namespaces, with its own /run).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
# shellcheck source=apt-missing.sh
. "$(dirname "$0")/apt-missing.sh"
install_missing openssh-server openssh-client iproute2 sudo util-linux passwd iputils-ping python3 python3-venv \
    procps chromium pypy3 tcpdump tshark traceroute iperf3 dnsutils

# Container environments (DockerImage): podman, runc, a local registry, a Python base image.
"$(dirname "$0")/containers.sh"
