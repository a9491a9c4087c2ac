"""Read inventory sources with Ansible's Python API, in a short process of its own.

The reader (this module's :func:`main`; by hand: ``python -m unicorn_ansible.ansible.inventory_list
SOURCE...``) prints one JSON object: ``listing``, what ``ansible-inventory --list`` prints for the
sources (every form Ansible reads: INI, YAML, folders with group_vars and host_vars, scripts,
plugins), ``rendered``, host -> name -> value for the templated values that are not secrets,
rendered by Ansible's templating as a play would (hostvars, groups, filters, lookups), and
``secret_names``, the templated values that are secrets because they refer to one (or their
rendering holds one: those are never given); or ``error``, one line.

Why a process: importing Ansible takes ~0.4 s and tens of MB, which the controller would then
carry for the whole run beside ansible-playbook's own; the command line starts this reader before
it imports anything else (``ui/main.py``), so both load at once. Without ansible-runner and the
``ansible-inventory`` command it also starts a little sooner (0.39 s against 0.41–0.53 s through
ansible-runner, measured here), and templated values no longer need a play of their own.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

from ..hostvars import holds_any, render_failure, secret_templates, secret_texts, to_render

if TYPE_CHECKING:  # Ansible's types (it ships no hints; named for the reader)
    from ansible.inventory.host import Host
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.vars.manager import VariableManager

    from ..node.wire import JSONObject

#: the reader's program: this module's main, the current folder off sys.path (``-m`` would put it
#: first, and a package or module named ``ansible`` there would hide Ansible)
_READER = f"import sys; del sys.path[0]; from {__name__} import main; sys.exit(main(sys.argv[1:]))"
#: started readers by their sources (resolved paths), waiting to be collected
_STARTED: dict[tuple[str, ...], subprocess.Popen[bytes]] = {}
#: a reader started before its sources were known (:func:`warm_up`), loading Ansible meanwhile,
#: and the pipe it reads them from (NUL-separated; its argument is the pipe's descriptor)
_WARM: list[tuple[subprocess.Popen[bytes], int]] = []
_SOURCES_FROM = "--sources-from-fd="
#: how long reading an inventory may take (a dynamic inventory script or a lookup can hang), in
#: seconds, and when to say it is still going
TIMEOUT_VARIABLE = "UNICORN_ANSIBLE_INVENTORY_TIMEOUT"
_DEFAULT_TIMEOUT = 300.0
_NOTICE_AFTER = 15.0


def _stop_uncollected() -> None:
    """A reader nobody collected (the command stopped at a usage error) ends with this process."""
    for process in [*_STARTED.values(), *(process for process, _ in _WARM)]:
        _kill(process)
    _STARTED.clear()
    _WARM.clear()


atexit.register(_stop_uncollected)


def _popen(arguments: list[str], pass_fds: tuple[int, ...] = ()) -> subprocess.Popen[bytes]:
    # its own session and process group: what an inventory script starts ends with it (see _kill)
    return subprocess.Popen([sys.executable, "-c", _READER, *arguments], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=pass_fds,
                            start_new_session=True)


def _kill(process: subprocess.Popen[bytes]) -> None:
    """End a reader and what it started (an inventory script and its children)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate()


def timeout() -> float:
    """How long reading an inventory may take: UNICORN_ANSIBLE_INVENTORY_TIMEOUT seconds, else 300."""
    raw = os.environ.get(TIMEOUT_VARIABLE, "")
    try:
        value = float(raw) if raw else _DEFAULT_TIMEOUT
    except ValueError:
        value = _DEFAULT_TIMEOUT
    return value if value > 0 else _DEFAULT_TIMEOUT


def warm_up() -> None:
    """Start a reader before the command line is parsed: it loads Ansible (most of its time) while
    this process loads the rest, and reads the sources the next :func:`start` gives it."""
    if not _WARM:
        readable, writable = os.pipe()
        try:
            _WARM.append((_popen([f"{_SOURCES_FROM}{readable}"], (readable,)), writable))
        finally:
            os.close(readable)


def start(sources: list[str]) -> subprocess.Popen[bytes]:
    """Start reading ``sources`` (resolved paths) in a new process (the warm one if there is one);
    :func:`collect` reads its answer."""
    key = tuple(sources)
    if key not in _STARTED:
        if _WARM:
            process, writable = _WARM.pop()
            with os.fdopen(writable, "wb") as pipe:
                pipe.write("\0".join(sources).encode())
            _STARTED[key] = process
        else:
            _STARTED[key] = _popen(sources)
    return _STARTED[key]


def prefetch(sources: list[str]) -> None:
    """Start reading ``sources`` early if they all exist (else leave the error to :func:`collect`'s caller)."""
    resolved = [os.path.realpath(os.path.expanduser(source)) for source in sources]
    if resolved and all(os.path.exists(path) for path in resolved):
        start(resolved)


def collect(sources: list[str]) -> tuple[JSONObject | None, str]:
    """The answer for ``sources`` (started now unless prefetched): (the JSON object or None, stderr)."""
    process = start(sources)
    limit = timeout()
    try:
        out, err = _communicate(process, sources, limit)
    except subprocess.TimeoutExpired:
        _kill(process)
        return None, (f"reading it took over {limit:g} s and was stopped (a dynamic inventory script or a lookup "
                      f"that hangs?); if it needs longer, set {TIMEOUT_VARIABLE} to more seconds")
    finally:
        _STARTED.pop(tuple(sources), None)
    try:
        answer = json.loads(out) if process.returncode == 0 else None
    except ValueError:
        answer = None
    return answer if isinstance(answer, dict) else None, err.decode(errors="replace")


def _communicate(process: subprocess.Popen[bytes], sources: list[str], limit: float) -> tuple[bytes, bytes]:
    """The reader's output within ``limit`` seconds; after a while, one line says it is still going."""
    try:
        return process.communicate(timeout=min(_NOTICE_AFTER, limit))
    except subprocess.TimeoutExpired:
        if limit <= _NOTICE_AFTER:
            raise
    print(f"reading inventory {' '.join(sources)}: still going after {_NOTICE_AFTER:g} s "
          f"(stopped after {limit:g} s; {TIMEOUT_VARIABLE} sets that)", file=sys.stderr, flush=True)
    return process.communicate(timeout=limit - _NOTICE_AFTER)


def _read(sources: list[str]) -> tuple[DataLoader, InventoryManager, VariableManager]:
    """Ansible's inventory of ``sources``, and its variable manager (hostvars enabled for templating)."""
    from ansible import constants
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.loader import init_plugin_loader
    from ansible.vars.hostvars import HostVars
    from ansible.vars.manager import VariableManager

    init_plugin_loader([])
    # a source no inventory plugin can parse is an error, not a warning and an empty inventory
    constants.INVENTORY_UNPARSED_IS_FAILED = True
    constants.INVENTORY_ANY_UNPARSED_IS_FAILED = True
    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources=sources)
    variables = VariableManager(loader=loader, inventory=inventory)
    HostVars(inventory=inventory, variable_manager=variables, loader=loader)
    return loader, inventory, variables


def _groups(inventory: InventoryManager, hosts: frozenset[str]) -> JSONObject:
    """Groups as ``ansible-inventory --list`` writes them: hosts and children, empty keys left out."""
    listing: JSONObject = {}
    for group in inventory.groups.values():
        entry: JSONObject = {"hosts": [host.name for host in group.hosts if host.name in hosts] if group.name != "all" else [],
                 "children": [child.name for child in group.child_groups]}
        entry = {key: value for key, value in entry.items() if value}
        if entry:
            listing[group.name] = entry
    return listing


def _host_variables(variables: VariableManager, host: Host) -> dict[str, object]:
    """A host's variables flattened as ``ansible-inventory --list`` gives them (magic variables left out)."""
    from ansible import constants

    found = variables.get_vars(host=host, include_hostvars=False, stage="all")
    for internal in constants.INTERNAL_STATIC_VARS:
        found.pop(internal, None)
    return dict(found)


def _render(loader: DataLoader, variables: VariableManager, inventory: InventoryManager,
            raw: dict[str, dict[str, object]], names: dict[str, list[str]]) -> dict[str, dict[str, object]]:
    """The templated values ``names`` lists, per host, rendered with the host's variables."""
    from ansible.template import Templar

    rendered: dict[str, dict[str, object]] = {}
    for host, host_names in names.items():
        context = variables.get_vars(host=inventory.get_host(host), include_hostvars=True)
        templar = Templar(loader=loader, variables=context)
        for name in host_names:
            try:
                rendered.setdefault(host, {})[name] = templar.template(raw[host][name])
            except Exception as exc:  # Ansible's templating errors have no common base worth naming
                raise _RenderError(render_failure(host, name, str(exc))) from exc
    return rendered


class _RenderError(Exception):
    pass


def _encoder() -> type[json.JSONEncoder]:
    """Ansible's JSON encoder for inventories (vault values as ``{"__ansible_vault": ...}``)."""
    try:
        from ansible._internal._json._profiles import _inventory_legacy

        encoder: type[json.JSONEncoder] = _inventory_legacy.Encoder
        return encoder
    except ImportError:  # ansible-core < 2.19
        from ansible.parsing.ajson import AnsibleJSONEncoder

        legacy: type[json.JSONEncoder] = AnsibleJSONEncoder
        return legacy


def listing(sources: list[str]) -> JSONObject:
    """``listing`` and ``rendered`` (see the module's docstring), as plain JSON types."""
    loader, inventory, variables = _read(sources)
    hosts = inventory.get_hosts("all")
    raw = {host.name: _host_variables(variables, host) for host in hosts}
    encoder = _encoder()
    plain = json.loads(json.dumps(raw, cls=encoder))
    secrets = secret_templates(plain)
    names = to_render(plain, secrets)
    rendered = _render(loader, variables, inventory, raw, names) if names else {}
    rendered = json.loads(json.dumps(rendered, cls=encoder))
    texts = secret_texts(plain)
    # a rendering that holds a secret's text came from one, however the template reached it
    secrets |= {name for values in rendered.values() for name, value in values.items() if holds_any(value, texts)}
    rendered = {host: {name: value for name, value in values.items() if name not in secrets}
                for host, values in rendered.items()}
    listed = _groups(inventory, frozenset(raw))
    listed["_meta"] = {"hostvars": {host: values for host, values in plain.items() if values}}
    answer: JSONObject = json.loads(json.dumps(
        {"listing": listed, "rendered": rendered, "secret_names": sorted(secrets)}, cls=encoder))
    return answer


def _sources_from(descriptor: int) -> list[str]:
    """Once Ansible's inventory modules are loaded: the sources the starting process sends."""
    from ansible.inventory.manager import InventoryManager  # noqa: F401
    from ansible.vars.manager import VariableManager  # noqa: F401

    with os.fdopen(descriptor, "rb") as pipe:
        return [source for source in pipe.read().decode().split("\0") if source]


def main(argv: list[str]) -> int:
    if len(argv) == 1 and argv[0].startswith(_SOURCES_FROM):
        argv = _sources_from(int(argv[0][len(_SOURCES_FROM):]))
        if not argv:  # nothing to read after all
            return 0
    try:
        answer = listing(argv)
    except _RenderError as exc:
        answer = {"error": str(exc)}
    except Exception as exc:  # Ansible's parse errors: the message is what the user needs
        print(str(exc).strip() or type(exc).__name__, file=sys.stderr)
        return 1
    json.dump(answer, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
