"""Other libraries' objects in the model (netunicorn's), without the model importing them.

The model mirrors netunicorn's (Tasks, Pipelines, Nodes) and users mix netunicorn's objects with
ours. The model never imports netunicorn, nor the module that knows it (compat/netunicorn.py):
that module registers an :class:`Adapter` here when it loads (loading the package's public names
loads it), and the model asks the registered adapters where such objects enter or leave:

- ``entering``: a node, flow or environment given to ``Experiment.append``/``map``, as ours;
- ``environments``: the library's environment classes a node runs (its code checks them);
- ``by_value``: the library's modules whose code travels to hosts inside the pickles;
- ``host_requirements``: the deployment commands that give a host what that code imports.

Nothing here imports a library or asks whether one is installed: an adapter looks at the object
it is given (its type's module) and at what this process has already loaded.

Two kinds of objects need no adapter: a class shaped like a Task or TaskDispatcher counts as one
(model/task.py), and a :class:`TwinEnum`'s member equals the member of the same name of another
library's enum of the same name (netunicorn's ``Architecture``, ``ExperimentStatus``).
"""

from __future__ import annotations

import enum
import types
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from .nodes import Node


class Adapter(Protocol):
    """What the model asks of a library whose objects users mix with ours."""

    def entering(self, value: object) -> object:
        """``value`` as the model's own object when it is one of the library's (else ``value``)."""

    def environments(self, node: Node) -> set[type]:
        """The library's environment definition classes that ``node`` runs."""

    def by_value(self) -> list[types.ModuleType]:
        """The library's modules (loaded here) whose code travels to hosts by value."""

    def host_requirements(self, pipeline: object) -> list[str]:
        """Deployment commands that give a host what the library's code in ``pipeline`` imports."""


_adapters: list[Adapter] = []


def register(adapter: Adapter) -> None:
    """Let the model ask ``adapter`` (once: registering it again changes nothing)."""
    if adapter not in _adapters:
        _adapters.append(adapter)


def entering(value: object) -> object:
    """``value`` as the model's own object, converted by the adapter of its library if it has one."""
    for adapter in _adapters:
        value = adapter.entering(value)
    return value


def environments(node: Node) -> set[type]:
    return {kind for adapter in _adapters for kind in adapter.environments(node)}


def by_value() -> list[types.ModuleType]:
    return [module for adapter in _adapters for module in adapter.by_value()]


def host_requirements(pipeline: object) -> list[str]:
    return [command for adapter in _adapters for command in adapter.host_requirements(pipeline)]


class TwinEnum(enum.Enum):
    """An enum whose members equal (and hash as) the members of the same name of another library's
    enum of the same class name: netunicorn-library's dispatchers compare our nodes'
    ``architecture`` with netunicorn's ``Architecture``, netunicorn's notebooks our statuses with
    its ``ExperimentStatus``. ``Twin(member)`` takes the other library's member too."""

    def __eq__(self, other: object) -> bool:
        if isinstance(other, enum.Enum) and not isinstance(other, type(self)):
            return type(other).__name__ == type(self).__name__ and other.name == self.name
        return self is other

    __hash__ = enum.Enum.__hash__  # the member's name, as the other enum's

    @classmethod
    def _missing_(cls, value: object) -> TwinEnum | None:
        if isinstance(value, enum.Enum) and type(value).__name__ == cls.__name__:
            return cls.__members__.get(value.name)
        return None


__all__ = ["Adapter", "TwinEnum", "by_value", "entering", "environments", "host_requirements", "register"]
