#!/usr/bin/env bash
# What the container tests (issue 17) need on Debian: podman with runc (crun refuses
# hybrid cgroups), limits the sandbox allows, a local registry (Debian's docker-registry)
# trusted over plain HTTP, and a Python base image made with debootstrap and imported
# into podman (the tests have no public registry). Installs, writes and builds only what is
# missing, so a second call takes a second; needs root. Docker (docker.io) is installed,
# not started: the tests start a dockerd of their own. What it changes on the machine: the
# apt packages below, two files in /etc/containers (below), the image $BASE_IMAGE in root's
# podman storage and its rootfs tarball in .cache/containers of the clone.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
cd "$(dirname "$0")/.."

# the tests' base image (tests/containers.py names it too)
BASE_IMAGE=localhost/unicorn-ansible-test-python:bookworm
# the rootfs tarball, kept in the clone so one CI run builds it once
CACHE=${UNICORN_CONTAINERS_CACHE:-$PWD/.cache/containers}

# shellcheck source=apt-missing.sh
. "$(dirname "$0")/apt-missing.sh"
install_missing podman runc busybox-static debootstrap docker-registry uidmap docker.io

# Two drop-in files, each written only where it is missing (an existing one, the machine's or
# edited by hand, is left as it is) and named as the tests': delete both to undo.
write_missing() {
    local path=$1
    if [ ! -e "$path" ]; then
        mkdir -p "$(dirname "$path")"
        cat > "$path"
    fi
}
write_missing /etc/containers/containers.conf.d/50-unicorn-ansible-tests.conf <<'CONF'
# Written by unicorn-ansible's test set-up (.ci/containers.sh) where it was missing; delete it to undo.
# crun refuses this kernel's hybrid cgroups, and the sandbox's hard limit on open files and
# processes is 20000.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=20000:20000"]

[engine]
runtime = "runc"
CONF
write_missing /etc/containers/registries.conf.d/50-unicorn-ansible-tests.conf <<'CONF'
# Written by unicorn-ansible's test set-up (.ci/containers.sh) where it was missing; delete it to undo.
# The only registry the tests start (tests/containers.py: Debian's docker-registry, port 5000)
# speaks plain HTTP, on the controller's loopback and on the testbed's bridge; no other registry
# is marked insecure.
[[registry]]
location = "127.0.0.1:5000"
insecure = true

[[registry]]
location = "10.77.0.1:5000"
insecure = true
CONF

if podman image exists "$BASE_IMAGE"; then
    exit 0
fi
mkdir -p "$CACHE"
if [ ! -s "$CACHE/bookworm-python.tar" ]; then
    mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)
    rootfs=$(mktemp -d)
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip bookworm "$rootfs" \
        "${mirror:-http://deb.debian.org/debian}" >"$CACHE/debootstrap.log" 2>&1 \
        || { tail -n 20 "$CACHE/debootstrap.log"; exit 1; }
    # pip installs into the image's Python as in python:*-slim (no PEP 668 marker), no .debs kept
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
    tar -C "$rootfs" -cf "$CACHE/bookworm-python.tar.tmp" .
    mv "$CACHE/bookworm-python.tar.tmp" "$CACHE/bookworm-python.tar"
    rm -rf "$rootfs"
fi
podman import --quiet --change 'CMD ["/bin/sh"]' "$CACHE/bookworm-python.tar" "$BASE_IMAGE" >/dev/null
