"""Whether a pipeline uses the run's flag store, read from its pickle, and the refusal of a run whose
pipelines use flags on a host whose connection cannot reach the store.

A pipeline's tasks reach the store through the flag module's functions and tasks, which travel
by value (model/travel.py), through ``from unicorn_ansible import get_flag`` inside ``run()``
(the bundle's small package), or through netunicorn-library's flag tasks (its HTTP protocol).
Each leaves a name in the pickle: the module's name, the function's name beside the package's,
or the environment variable the tasks read. The pickle is read, never loaded: its strings are
listed by pickletools. A use hidden from all three (a name built at run time) is not seen: the
flag call then fails on the host saying it cannot reach the store, as it would without this check.
"""

from __future__ import annotations

import hashlib
import pickletools
from collections.abc import Iterable

from ..connections import HostConnections
from ..engine.flag_server import FlagReach
from ..errors import ExperimentError
from ..model.experiment import Deployment
from ..model.flags import ENDPOINT_VARIABLE

#: modules whose code, in a pickle, means flags: ours (by value) and netunicorn-library's flag tasks
FLAG_MODULES = frozenset({"unicorn_ansible.model.flags", "netunicorn.library.tasks.flags"})
#: what a task imports from unicorn_ansible inside run() to use flags
FLAG_FUNCTIONS = frozenset({"get_flag", "set_flag", "increment_flag", "decrement_flag", "wait_for_flag",
                            "SetFlagTask", "GetFlagTask", "WaitForExactFlagResultTask", "AtomicIncrementFlagTask",
                            "AtomicDecrementFlagTask"})
#: the variables that point tasks at the store (ours, netunicorn's)
FLAG_VARIABLES = frozenset({ENDPOINT_VARIABLE, "NETUNICORN_GATEWAY_ENDPOINT"})


def _strings(pickle: bytes) -> set[str]:
    try:
        return {arg for _, arg, _ in pickletools.genops(pickle) if isinstance(arg, str)}
    except Exception:  # not ours to judge here: the pickle was made by the model
        return set()


def uses_flags(pickle: bytes) -> bool:
    """Whether a pipeline's pickle refers to the flag store (see the module's docstring); a pipeline
    that many nodes share is read once."""
    digest = hashlib.sha256(pickle).digest()
    if digest not in _verdicts:
        if len(_verdicts) > 4096:  # a long-lived process (a notebook) compiles many runs
            _verdicts.clear()
        names = _strings(pickle)
        _verdicts[digest] = bool(names & FLAG_MODULES or names & FLAG_VARIABLES
                                 or ("unicorn_ansible" in names and names & FLAG_FUNCTIONS))
    return _verdicts[digest]


_verdicts: dict[bytes, bool] = {}


def check_flags_reach(deployments: Iterable[Deployment], connections: HostConnections) -> None:
    """An ExperimentError naming the first node whose pipeline uses flags on a connection that cannot
    reach the store (only those deployments are read: a run over ssh and local hosts costs nothing)."""
    for deployment in deployments:
        connection = connections[deployment.node.name]
        if connection.flag_reach is FlagReach.NONE and uses_flags(deployment.pipeline):
            raise ExperimentError(connection.cannot_reach_store(deployment.node.name) or "")
