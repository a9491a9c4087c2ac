"""Nodes, their architecture, and pools of nodes (netunicorn's model)."""

from __future__ import annotations

import enum
import itertools
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Union


class Architecture(enum.Enum):
    """Architecture and operating system of a node."""

    LINUX_AMD64 = "linux/amd64"
    LINUX_ARM64 = "linux/arm64"
    WINDOWS_AMD64 = "win/amd64"
    WINDOWS_ARM64 = "win/arm64"
    UNKNOWN = "unknown"


class Node:
    """A host that runs a pipeline: a name, properties (host variables, groups) and an architecture.

    ``node['key']`` reads a property and gives ``None`` when it is absent.
    """

    def __init__(
        self,
        name: str,
        properties: Optional[Dict[str, Any]] = None,
        architecture: Architecture = Architecture.UNKNOWN,
    ) -> None:
        self.name = name
        self.properties: Dict[str, Any] = properties if properties is not None else {}
        self.additional_properties: Dict[str, Any] = {}
        self.architecture = architecture

    def __getitem__(self, item: str) -> Any:
        return self.properties.get(item, None)

    def __setitem__(self, key: str, value: Any) -> None:
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
            and self.architecture == other.architecture
        )

    def __hash__(self) -> int:
        return hash(self.name)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "name": self.name,
            "properties": self.properties,
            "additional_properties": self.additional_properties,
            "architecture": self.architecture.value,
        }


class Nodes:
    """Base class of node pools."""

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def filter(self, function: Callable[[Node], bool]) -> "Nodes":
        raise NotImplementedError

    def take(self, count: int) -> List[Node]:
        raise NotImplementedError

    def skip(self, count: int) -> "Nodes":
        raise NotImplementedError

    def set_property(self, name: str, value: Any) -> "Nodes":
        raise NotImplementedError


class CountableNodePool(Nodes):
    """A pool of nodes; its elements are nodes or (nested) pools."""

    def __init__(self, nodes: Sequence[Union[Node, Nodes]]) -> None:
        self.nodes: List[Union[Node, Nodes]] = list(nodes)

    def __str__(self) -> str:
        return str(self.nodes)

    __repr__ = __str__

    def __len__(self) -> int:
        return len(self.nodes)

    def __getitem__(self, key: int) -> Union[Node, Nodes]:
        return self.nodes[key]

    def __setitem__(self, key: int, value: Union[Node, Nodes]) -> None:
        self.nodes[key] = value

    def __iter__(self) -> Iterator[Union[Node, Nodes]]:
        return iter(self.nodes)

    def pop(self, index: int) -> Union[Node, Nodes]:
        return self.nodes.pop(index)

    def flatten(self) -> List[Node]:
        """Every node of the pool, nested pools included, in order."""
        out: List[Node] = []
        for element in self.nodes:
            if isinstance(element, Node):
                out.append(element)
            elif isinstance(element, CountableNodePool):
                out.extend(element.flatten())
            else:
                out.extend(element)  # type: ignore[arg-type]
        return out

    def filter(self, function: Callable[[Node], bool]) -> "CountableNodePool":
        """A pool of the nodes for which ``function(node)`` is true; nested pools are filtered too."""
        kept: List[Union[Node, Nodes]] = []
        for element in self.nodes:
            if isinstance(element, Node):
                if function(element):
                    kept.append(element)
            else:
                sub = element.filter(function)
                if len(sub) > 0:
                    kept.append(sub)
        return CountableNodePool(kept)

    def take(self, count: int) -> List[Node]:
        """The first ``count`` nodes (nested pools flattened)."""
        iterator = itertools.chain.from_iterable(
            [x] if isinstance(x, Node) else x for x in self.nodes  # type: ignore[misc]
        )
        return list(itertools.islice(iterator, max(count, 0)))

    def skip(self, count: int) -> "CountableNodePool":
        """A pool of the elements after the first ``count``."""
        if count > len(self.nodes):
            print(
                f"Warning: asked to skip {count} nodes, but pool length is {len(self.nodes)}. "
                "Returning empty pool."
            )
            return CountableNodePool([])
        return CountableNodePool(self.nodes[count:])

    def set_property(self, name: str, value: Any) -> "CountableNodePool":
        """Set a property on every node of the pool (nested pools included); returns the pool."""
        for element in self.nodes:
            if isinstance(element, Node):
                element.properties[name] = value
            else:
                element.set_property(name, value)
        return self
