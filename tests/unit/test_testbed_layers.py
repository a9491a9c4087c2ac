"""The pure parts of the testbed hosts' own roots: what is hidden, how a host's first process makes
its root, which hosts the apt proxy lets through, and how down() recognises its own tmpfs."""

from __future__ import annotations

from pathlib import Path

import pytest

from unicorn_ansible.errors import TestbedError as BedError
from unicorn_ansible.testbed import aptproxy, layers
from unicorn_ansible.testbed.lab import _mount_source


def test_hidden_folders_are_masked_once_and_never_the_system() -> None:
    assert layers.masked_paths(["/work/project/.venv", "/work/project", "/root/.unicorn-ansible", "/home",
                                "/home/alice/.unicorn-ansible", "/tmp/pytest/home", "/usr", "/", "relative"]) == [
        "/home", "/root/.unicorn-ansible", "/work/project"]


def test_a_state_folder_overlayfs_cannot_name_is_refused_with_the_fix() -> None:
    layers.check_paths(Path("/root/.unicorn-ansible/testbed"))
    for bad in ("/srv/a,b/testbed", "/srv/a:b/testbed"):
        with pytest.raises(BedError, match="UNICORN_ANSIBLE_HOME"):
            layers.check_paths(Path(bad))


def test_a_host_mounts_its_overlay_first_and_makes_it_its_root_last() -> None:
    script = layers.start_script(Path("/s"), "h2", [("cgroup", "/sys/fs/cgroup/memory", "cgroup", "memory")],
                                 ["/var/lib/containers"], "/usr/sbin/sshd -D").splitlines()
    root = "'/s/layers/h2/mount'"
    assert script[:3] == ["set -e", "hostname 'h2'",
                          "mount -t overlay overlay -o 'lowerdir=/,upperdir=/s/layers/h2/upper,"
                          f"workdir=/s/layers/h2/work' {root}"]
    assert script[-2:] == [f"cd {root} && pivot_root . . && umount -l . && cd /", "exec /usr/sbin/sshd -D"]
    body = "\n".join(script)
    for fresh in ("proc proc '/s/layers/h2/mount/proc'", "sysfs sysfs '/s/layers/h2/mount/sys'",
                  "tmpfs '/s/layers/h2/mount/run'", "tmpfs '/s/layers/h2/mount/tmp'",
                  "tmpfs '/s/layers/h2/mount/dev/shm'", "--rbind /dev '/s/layers/h2/mount/dev'",
                  "--bind '/var/lib/containers' '/s/layers/h2/mount/var/lib/containers'",
                  "mount -t cgroup -o 'memory' 'cgroup' '/s/layers/h2/mount/sys/fs/cgroup/memory'",
                  "mkdir -m 755 '/s/layers/h2/mount/run/sshd'"):
        assert fresh in body, fresh
    # nothing is mounted on the machine's own folders: every target is inside the host's root
    for line in script:
        if line.startswith("mount ") and "overlay" not in line:
            assert line.split()[-1].startswith(root[:-1]) or line.endswith("|| true"), line


def test_the_apt_proxy_lets_hosts_reach_the_machines_apt_sources_only(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(
        "# a comment: deb http://commented.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://deb.debian.org/debian bookworm main\n"
        "deb-src https://Security.Debian.org/debian-security bookworm-security main\n"
        "deb file:/srv/mirror ./\n"
        "deb cdrom:[Debian]/ bookworm main\n")
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.one.example/debian http://mirror.two.example/debian\n"
        "Suites: bookworm\nComponents: main\n\nTypes: deb\nURIs: mirror+file:///etc/apt/mirrors.txt\n")
    (tmp_path / "sources.list.d" / "extra.list").write_text("deb http://apt.example.org/x stable main # note\n")
    (tmp_path / "sources.list.d" / "ignored.list.save").write_text("deb http://old.example/ x main\n")
    assert aptproxy.source_hosts(tmp_path) == ["apt.example.org", "deb.debian.org", "mirror.one.example",
                                               "mirror.two.example", "security.debian.org"]
    assert aptproxy.source_hosts(tmp_path / "missing") == []


def test_down_unmounts_only_a_tmpfs_it_named(tmp_path: Path) -> None:
    table = tmp_path / "mountinfo"
    table.write_text(
        "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
        "90 22 0:50 / /srv/state/layers rw,relatime shared:40 - tmpfs unicorn-testbed-layers rw,mode=700\n"
        "91 22 0:51 / /srv/other rw,relatime - tmpfs tmpfs rw\n")
    assert _mount_source("/srv/state/layers", str(table)) == "unicorn-testbed-layers"
    assert _mount_source("/srv/other", str(table)) == "tmpfs"
    assert _mount_source("/srv/nothing", str(table)) is None


def test_the_apt_proxy_forwards_to_allowed_hosts_and_refuses_the_rest() -> None:
    import http.client
    import socket
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Mirror(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"package at {self.path}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    mirror = ThreadingHTTPServer(("127.0.0.1", 0), Mirror)
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen(8)
    threading.Thread(target=mirror.serve_forever, daemon=True).start()
    threading.Thread(target=aptproxy.serve, args=(listening, ["127.0.0.1"]), daemon=True).start()
    try:
        client = http.client.HTTPConnection(*listening.getsockname()[:2], timeout=10)
        mirror_port = mirror.server_address[1]
        for path in ("/debian/pool/a.deb", "/debian/pool/b.deb"):  # one connection, kept open
            client.request("GET", f"http://127.0.0.1:{mirror_port}{path}")
            answer = client.getresponse()
            assert (answer.status, answer.read()) == (200, f"package at {path}".encode())
        client.request("GET", "http://elsewhere.example/")
        refused = client.getresponse()
        assert refused.status == 403 and b"only the machine's apt sources (127.0.0.1)" in refused.read()
        client.request("CONNECT", "127.0.0.1:22")
        assert client.getresponse().status == 403  # tunnels go to port 443 only
    finally:
        mirror.shutdown()
