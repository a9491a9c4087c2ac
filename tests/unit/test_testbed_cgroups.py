"""Testbed hosts get the controller's cgroup hierarchies again (container runtimes need them)."""

from __future__ import annotations

from pathlib import Path

from unicorn_ansible.testbed.lab import _cgroup_mounts


def test_the_controller_cgroup_hierarchies_are_mounted_again_and_nothing_else(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text("\n".join([
        "proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0",
        "tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0",
        "cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0",
        "cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0",
        "cgroup2 /sys/fs/cgroup/unified cgroup2 rw,nosuid,nodev,noexec,relatime 0 0",
        "tmpfs /tmp tmpfs rw 0 0",
    ]) + "\n")
    assert _cgroup_mounts(str(mounts)) == [
        "mkdir -p '/sys/fs/cgroup' && mount -t tmpfs -o 'mode=755' 'tmpfs' '/sys/fs/cgroup' || true",
        "mkdir -p '/sys/fs/cgroup/memory' && mount -t cgroup -o 'memory' 'cgroup' '/sys/fs/cgroup/memory' || true",
        "mkdir -p '/sys/fs/cgroup/systemd' && mount -t cgroup -o 'none,name=systemd' 'cgroup' "
        "'/sys/fs/cgroup/systemd' || true",
        "mkdir -p '/sys/fs/cgroup/unified' && mount -t cgroup2 -o 'defaults' 'cgroup2' '/sys/fs/cgroup/unified' || true",
    ]
