"""The ``ssh`` connection: OpenSSH through Ansible's ssh plugin, with the run's masters and flag tunnel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..engine.flag_server import FlagEndpoint, FlagReach
from ..engine.rundir import RunDir
from ..engine.ssh_masters import close_masters, control_vars
from .base import Connection, Setting

#: the ssh plugin's own setting for our arguments
SSH_ARGS_SETTING = ("ssh_connection", "ssh_args", "ANSIBLE_SSH_ARGS")


def ssh_args(flags: FlagEndpoint | None = None) -> str:
    """Our ssh arguments; with ``flags``, each connection carries the run's flag tunnel."""
    # No -C: results files are large and lab links fast. ServerAlive: a host whose link
    # dies is noticed within about 15 s instead of hanging.
    args = "-o ControlMaster=auto -o ControlPersist=120s -o ServerAliveInterval=5 -o ServerAliveCountMax=3"
    if flags:
        # -o, not -R: Ansible gives ssh_args to sftp and scp too, where -R means something else.
        # ExitOnForwardFailure: a host where another program holds the port fails, not its tasks' flags.
        args += f" -o 'RemoteForward=127.0.0.1:{flags.port} {flags.socket}' -o ExitOnForwardFailure=yes"
    return args


@dataclass(frozen=True)
class Ssh(Connection):
    """Every connection goes through a master (ControlMaster=auto, ControlPersist) in the run's private
    control folder, which each step creates or checks and names to its play (engine/ssh_masters.py);
    the step's end stops them. Tasks reach the flag store through the reverse tunnel every
    connection of an execution carries (``RemoteForward``); cancel and collect carry none. Files
    come home by sftp/scp over the same master. Mitogen's strategy uses the same ssh arguments."""

    kind: ClassVar[str] = "ssh"
    # "" and "smart": Ansible's default connection is ssh
    names: ClassVar[frozenset[str]] = frozenset({"", "ssh", "smart", "ansible.builtin.ssh", "mitogen_ssh"})
    flag_reach: ClassVar[FlagReach] = FlagReach.TUNNEL

    def ansible_settings(self, flags: FlagEndpoint | None) -> list[Setting]:
        return [(*SSH_ARGS_SETTING, ssh_args(flags))]

    def step_vars(self, run: RunDir, tunnel: bool) -> dict[str, str]:
        # Without the tunnel: the tunnel's port on the host may still be held by the run's own session
        # (a cancel from another terminal, a run shutting down) or by a session lost when a link was
        # cut (sshd notices only hours later), which refuses every new connection asking for it.
        return {**control_vars(run), **({} if tunnel else {"ansible_ssh_args": ssh_args()})}

    def close(self, run: RunDir) -> int:
        return close_masters(run)
