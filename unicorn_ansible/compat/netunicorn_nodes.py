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

from typing import Any, TypeVar

from netunicorn.base import nodes as theirs

from ..model.nodes import Architecture, CountableNodePool, Node, UncountableNodePool


# Our attributes (architecture, available_environments: properties) shadow netunicorn's of the
# same names; everything of netunicorn's reads them.
class NetunicornNode(Node, theirs.Node):  # type: ignore[misc]
    """One of our nodes that is a netunicorn Node too."""


class NetunicornCountableNodePool(CountableNodePool, theirs.Nodes):  # type: ignore[misc]
    """Our CountableNodePool that is a netunicorn node pool too (its nodes are NetunicornNodes)."""

    def __json__(self) -> Any:
        return theirs.CountableNodePool.__json__(self)  # type: ignore[arg-type]  # reads .nodes only

    @classmethod
    def from_json(cls, data: Any, metadata: Any = None) -> NetunicornCountableNodePool:
        return netunicorn_pool(CountableNodePool([_ours(x) for x in theirs.CountableNodePool.from_json(data).nodes]))


class NetunicornUncountableNodePool(UncountableNodePool, theirs.Nodes):  # type: ignore[misc]
    """Our UncountableNodePool that is a netunicorn node pool too (its templates are NetunicornNodes)."""

    def __json__(self) -> Any:
        return theirs.UncountableNodePool.__json__(self)  # type: ignore[arg-type]  # reads the templates only

    @classmethod
    def from_json(cls, data: Any, metadata: Any = None) -> NetunicornUncountableNodePool:
        pool = theirs.UncountableNodePool.from_json(data, metadata)
        return netunicorn_pool(UncountableNodePool([_ours(x) for x in pool._node_template], pool.soft_limit))


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


def _ours(element: Any) -> Any:
    return as_our_node(element) if isinstance(element, theirs.Node) else element


def netunicorn_node(node: Node) -> NetunicornNode:
    """``node`` as a netunicorn Node: the same name, properties and architecture (learned from the
    host when first read, as ``node``'s), its own object."""
    if isinstance(node, NetunicornNode):
        return node
    adapted = NetunicornNode.__new__(NetunicornNode)
    adapted.__dict__.update(node.__dict__)
    return adapted


PoolT = TypeVar("PoolT", CountableNodePool, UncountableNodePool)


def netunicorn_pool(pool: PoolT) -> PoolT:
    """``pool`` as a netunicorn pool of netunicorn Nodes (nested pools too), with the same nodes' data."""
    if isinstance(pool, (NetunicornCountableNodePool, NetunicornUncountableNodePool)):
        return pool
    if isinstance(pool, CountableNodePool):
        return NetunicornCountableNodePool([
            netunicorn_node(e) if isinstance(e, Node) else
            netunicorn_pool(e) if isinstance(e, (CountableNodePool, UncountableNodePool)) else e
            for e in pool.nodes])
    adapted = NetunicornUncountableNodePool([netunicorn_node(node) for node in pool._node_template])
    adapted._counter, adapted.soft_limit = pool._counter, pool.soft_limit  # numbered on from where it was
    return adapted


__all__ = ["NetunicornCountableNodePool", "NetunicornNode", "NetunicornUncountableNodePool", "as_our_node",
           "netunicorn_node", "netunicorn_pool"]
