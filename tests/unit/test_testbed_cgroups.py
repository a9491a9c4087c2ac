"""Testbed hosts get the controller's cgroup hierarchies again (container runtimes need them)."""

from __future__ import annotations

from pathlib import Path

from unicorn_ansible.testbed.layers import cgroup_mounts


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
    assert cgroup_mounts(str(mounts)) == [
        ("tmpfs", "/sys/fs/cgroup", "tmpfs", "mode=755"),
        ("cgroup", "/sys/fs/cgroup/memory", "cgroup", "memory"),
        ("cgroup", "/sys/fs/cgroup/systemd", "cgroup", "none,name=systemd"),
        ("cgroup2", "/sys/fs/cgroup/unified", "cgroup2", "defaults"),
    ]
