"""Our nodes and pools as netunicorn's, for netunicorn's code (imported once netunicorn is in use:
compat/netunicorn.py's ``for_netunicorn``; this module imports netunicorn-base).

netunicorn's ``Experiment.map`` takes only netunicorn Nodes (``isinstance``) and refuses pools
(netunicorn's ``Nodes``: "Expected sequence of nodes, got Nodes instead"). The client and the
command line hand out pools of these classes: each is ours (its own class derives from ours
first, so everything it does is ours) and netunicorn's. Back among ours (``Experiment.append``,
netunicorn's Experiment converted), such a node is a plain Node again (compat/netunicorn.py's
``as_node``).
"""

from __future__ import annotations

from typing import overload

from netunicorn.base import nodes as theirs
from netunicorn.base.types import NodeRepresentation, NodesRepresentation

from ..model.nodes import Architecture, CountableNodePool, Node, Nodes, UncountableNodePool


# Our properties (architecture, available_environments) stand for netunicorn's attributes of the
# same names, which its code reads: the types differ (ours are properties, our Architecture).
class NetunicornNode(Node, theirs.Node):  # type: ignore[misc,override]
    """One of our nodes that is a netunicorn Node too."""


class NetunicornCountableNodePool(CountableNodePool, theirs.Nodes):  # type: ignore[misc]
    """Our CountableNodePool that is a netunicorn node pool too (its nodes are NetunicornNodes)."""

    def __json__(self) -> NodesRepresentation:  # netunicorn's own, under its class name (its from_json reads it)
        return {**theirs.CountableNodePool.__json__(self), "node_pool_type": "CountableNodePool"}  # type: ignore[arg-type]

    @classmethod
    def from_json(cls, data: list[NodeRepresentation | NodesRepresentation],
                  metadata: object = None) -> NetunicornCountableNodePool:
        return netunicorn_pool(_ours(theirs.CountableNodePool.from_json(data)))


class NetunicornUncountableNodePool(UncountableNodePool, theirs.Nodes):  # type: ignore[misc]
    """Our UncountableNodePool that is a netunicorn node pool too (its templates are NetunicornNodes)."""

    def __json__(self) -> NodesRepresentation:
        return {**theirs.UncountableNodePool.__json__(self), "node_pool_type": "UncountableNodePool"}  # type: ignore[arg-type]

    @classmethod
    def from_json(cls, data: list[NodeRepresentation | NodesRepresentation],
                  metadata: object = None) -> NetunicornUncountableNodePool:
        return netunicorn_pool(_ours(theirs.UncountableNodePool.from_json(data, metadata)))


def as_our_node(node: object) -> object:
    """Our plain Node for a netunicorn Node: one built by hand (``Node(name="dummy", properties={})``),
    or one of ours handed to netunicorn code; anything else as it is."""
    if isinstance(node, Node):  # a NetunicornNode: the same data in a plain Node
        plain = Node.__new__(Node)
        plain.__dict__.update(node.__dict__)
        return plain
    if not isinstance(node, theirs.Node):
        return node
    ours = Node(node.name, dict(node.properties), Architecture(node.architecture))
    ours.additional_properties = dict(node.additional_properties)
    return ours


@overload
def _ours(pool: theirs.CountableNodePool) -> CountableNodePool: ...
@overload
def _ours(pool: theirs.UncountableNodePool) -> UncountableNodePool: ...


def _ours(pool: theirs.CountableNodePool | theirs.UncountableNodePool) -> CountableNodePool | UncountableNodePool:
    """A pool netunicorn read from its JSON, as ours (nested pools too)."""
    if isinstance(pool, theirs.UncountableNodePool):
        templates = [node for node in map(as_our_node, pool._node_template) if isinstance(node, Node)]
        return UncountableNodePool(templates, pool.soft_limit)
    elements: list[Node | Nodes] = []
    for element in pool.nodes:
        ours = _ours(element) if isinstance(element, (theirs.CountableNodePool, theirs.UncountableNodePool)) \
            else as_our_node(element)
        if isinstance(ours, (Node, Nodes)):
            elements.append(ours)
    return CountableNodePool(elements)


def netunicorn_node(node: Node) -> NetunicornNode:
    """``node`` as a netunicorn Node: the same name, properties and architecture (learned from the
    host when first read, as ``node``'s), its own object."""
    if isinstance(node, NetunicornNode):
        return node
    adapted = NetunicornNode.__new__(NetunicornNode)
    adapted.__dict__.update(node.__dict__)
    return adapted


@overload
def netunicorn_pool(pool: CountableNodePool) -> NetunicornCountableNodePool: ...
@overload
def netunicorn_pool(pool: UncountableNodePool) -> NetunicornUncountableNodePool: ...


def netunicorn_pool(pool: CountableNodePool | UncountableNodePool) -> CountableNodePool | UncountableNodePool:
    """``pool`` as a netunicorn pool of netunicorn Nodes (nested pools too), with the same nodes' data."""
    if isinstance(pool, (NetunicornCountableNodePool, NetunicornUncountableNodePool)):
        return pool
    if isinstance(pool, UncountableNodePool):
        adapted = NetunicornUncountableNodePool([netunicorn_node(node) for node in pool._node_template])
        adapted._counter, adapted.soft_limit = pool._counter, pool.soft_limit  # numbered on from where it was
        return adapted
    return NetunicornCountableNodePool([_element(element) for element in pool.nodes])


def _element(element: Node | Nodes) -> Node | Nodes:
    if isinstance(element, Node):
        return netunicorn_node(element)
    if isinstance(element, (CountableNodePool, UncountableNodePool)):
        return netunicorn_pool(element)
    return element


__all__ = ["NetunicornCountableNodePool", "NetunicornNode", "NetunicornUncountableNodePool", "as_our_node",
           "netunicorn_node", "netunicorn_pool"]
