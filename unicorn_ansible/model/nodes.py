"""Nodes, their architecture, and pools of nodes (netunicorn's model).

These are ours whether netunicorn is installed or not; netunicorn's code takes them as they are
where it can (see model/foreign.py), and the pools the client and the command line hand out are
netunicorn's too once netunicorn is in use (compat/netunicorn.py).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from . import foreign
from .environment import DockerImage, ShellExecution


class Architecture(foreign.TwinEnum):
    """Architecture and operating system of a node (equal to netunicorn's member of the same name)."""

    LINUX_AMD64 = "linux/amd64"
    LINUX_ARM64 = "linux/arm64"
    WINDOWS_AMD64 = "win/amd64"
    WINDOWS_ARM64 = "win/arm64"
    UNKNOWN = "unknown"


class Node:
    """A host that runs a pipeline: a name, properties (host variables, groups) and an architecture.

    ``node['key']`` reads a property and gives ``None`` when it is absent; a node is not
    iterable (``list(node)`` raises TypeError, as netunicorn's does).
    """

    _architecture: Architecture

    def __init__(
        self,
        name: str,
        properties: dict[str, Any] | None = None,
        architecture: Architecture = Architecture.UNKNOWN,
    ) -> None:
        self.name = name
        self.properties: dict[str, Any] = properties if properties is not None else {}
        self.additional_properties: dict[str, Any] = {}
        self._learn_architecture: Callable[[str], Architecture] | None = None
        self.architecture = architecture

    @property
    def architecture(self) -> Architecture:
        """The node's architecture; an unknown one is learned from the host when first read,
        if the node's pool can ask (see ``learn_architecture_with``)."""
        learn: Callable[[str], Architecture] | None = self.__dict__.get("_learn_architecture")
        if self._architecture is Architecture.UNKNOWN and learn is not None:
            self._learn_architecture = None
            self._architecture = learn(self.name)
        return self._architecture

    @architecture.setter
    def architecture(self, value: Architecture) -> None:
        self._architecture = Architecture(value)  # given netunicorn's member, ours of that name

    @property
    def available_environments(self) -> set[type]:
        """The environment definitions this node runs: ours, and the ones of the libraries in use
        (netunicorn's Deployment checks that a pipeline's is among them)."""
        return {ShellExecution, DockerImage} | foreign.environments(self)

    @property
    def known_architecture(self) -> Architecture:
        """The architecture as far as it is known, without asking the host."""
        return self._architecture

    def learn_architecture_with(self, learn: Callable[[str], Architecture]) -> None:
        """Let ``learn(name)`` find the architecture the first time it is read while unknown."""
        self._learn_architecture = learn

    def __getstate__(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if k != "_learn_architecture"}

    def __setstate__(self, state: dict[str, object]) -> None:
        # a node pickled by an older version kept netunicorn's environment classes: asked for now
        self.__dict__.update({k: v for k, v in state.items() if k != "available_environments"})

    def __iter__(self) -> Iterator[object]:
        raise TypeError("Node is not iterable")

    def __getitem__(self, item: str) -> Any:
        return self.properties.get(item, None)

    def __setitem__(self, key: str, value: object) -> None:
        self.properties[key] = value

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return self.name

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Node):
            return NotImplemented
        return (
            self.name == other.name
            and self.properties == other.properties
            and self.additional_properties == other.additional_properties
            and self.known_architecture == other.known_architecture
        )

    def __hash__(self) -> int:
        return hash(self.name)

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "properties": self.properties,
            "additional_properties": self.additional_properties,
            "architecture": self.known_architecture.value,
        }


class Nodes:
    """Base class of node pools."""

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def filter(self, function: Callable[[Node], bool]) -> Nodes:
        raise NotImplementedError

    def take(self, count: int) -> list[Node]:
        raise NotImplementedError

    def skip(self, count: int) -> Nodes:
        raise NotImplementedError

    def set_property(self, name: str, value: object) -> Nodes:
        raise NotImplementedError


class CountableNodePool(Nodes):
    """A pool of nodes; its elements are nodes or (nested) pools."""

    def __init__(self, nodes: Sequence[Node | Nodes]) -> None:
        self.nodes: list[Node | Nodes] = list(nodes)

    def __str__(self) -> str:
        return str(self.nodes)

    __repr__ = __str__

    def __len__(self) -> int:
        return len(self.nodes)

    def __getitem__(self, key: int) -> Node | Nodes:
        return self.nodes[key]

    def __setitem__(self, key: int, value: Node | Nodes) -> None:
        self.nodes[key] = value

    def __iter__(self) -> Iterator[Node | Nodes]:
        return iter(self.nodes)

    def pop(self, index: int) -> Node | Nodes:
        return self.nodes.pop(index)

    def flatten(self) -> list[Node]:
        """Every node of the pool, nested pools included, in order."""
        out: list[Node] = []
        for element in self.nodes:
            if isinstance(element, Node):
                out.append(element)
            elif isinstance(element, CountableNodePool):
                out.extend(element.flatten())
            else:
                out.extend(element)  # type: ignore[arg-type]
        return out

    def filter(self, function: Callable[[Node], bool]) -> CountableNodePool:
        """A pool of the nodes for which ``function(node)`` is true; nested pools are filtered too."""
        kept: list[Node | Nodes] = []
        for element in self.nodes:
            if isinstance(element, Node):
                if function(element):
                    kept.append(element)
            else:
                sub = element.filter(function)
                if len(sub) > 0:
                    kept.append(sub)
        return type(self)(kept)

    def take(self, count: int) -> list[Node]:
        """The first ``count`` nodes (nested pools flattened)."""
        iterator = itertools.chain.from_iterable(
            [x] if isinstance(x, Node) else x for x in self.nodes  # type: ignore[misc]
        )
        return list(itertools.islice(iterator, max(count, 0)))

    def skip(self, count: int) -> CountableNodePool:
        """A pool of the elements after the first ``count``."""
        if count > len(self.nodes):
            print(
                f"Warning: asked to skip {count} nodes, but pool length is {len(self.nodes)}. "
                "Returning empty pool."
            )
            return type(self)([])
        return type(self)(self.nodes[count:])

    def set_property(self, name: str, value: object) -> CountableNodePool:
        """Set a property on every node of the pool (nested pools included); returns the pool."""
        for element in self.nodes:
            if isinstance(element, Node):
                element.properties[name] = value
            else:
                element.set_property(name, value)
        return self


class UncountableNodePool(Nodes):
    """A pool that hands out nodes without end, made from templates (netunicorn's, e.g. a cloud):
    each node is a copy of the next template, its name followed by a running number, until
    ``soft_limit`` nodes have been handed out."""

    def __init__(self, node_template: list[Node], soft_limit: float | None = None) -> None:
        if soft_limit is not None and soft_limit <= 0:
            raise ValueError("Soft limit must be greater than 0.")
        self._node_template = node_template
        self._nodes = itertools.cycle(node_template)
        self._counter = itertools.count(start=1)
        self.soft_limit = float("inf") if soft_limit is None else soft_limit

    def __str__(self) -> str:
        return f"<Uncountable node pool with next node template: {self._node_template}>"

    __repr__ = __str__

    def __iter__(self) -> Iterator[Node]:
        return self

    def __next__(self) -> Node:
        node = copy.deepcopy(next(self._nodes))
        number = next(self._counter)
        if number > self.soft_limit:
            raise StopIteration
        node.name += str(number)
        return node

    def __getitem__(self, key: int) -> Node:
        return self._node_template[key]

    def __setitem__(self, key: int, value: Node) -> None:
        self._node_template[key] = value

    def __len__(self) -> int:
        return len(self._node_template)

    def filter(self, function: Callable[[Node], bool]) -> UncountableNodePool:
        pool = type(self)([x for x in self._node_template if function(x)])
        pool._counter, pool.soft_limit = self._counter, self.soft_limit
        return pool

    def take(self, count: int) -> list[Node]:
        return [next(self) for _ in range(count)]

    def skip(self, count: int) -> UncountableNodePool:
        for _ in range(count % len(self._node_template)):
            next(self._nodes)
        return self

    def set_property(self, name: str, value: object) -> UncountableNodePool:
        for node in self._node_template:
            node.properties[name] = value
        return self
