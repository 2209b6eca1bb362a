"""YAML loading with bounds: nesting depth, and how far aliases expand.

Manifests given to ``deployguard check`` (often a pull request's, in CI) and policy case
files may come from anyone who can open a pull request. PyYAML's composer recurses per
level, so deep nesting ended in a RecursionError traceback (exit 1, which ``check`` means
as "denied"); and aliases let a 1 KB document stand for hundreds of millions of values
("billion laughs"): PyYAML builds them as shared references, cheaply, but whatever walks
or serialises the result expands them (6.6 GB of RSS in two minutes, then killed). Like
Kubernetes' own YAML decoder, this refuses such documents with a clear error instead.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

MAX_DEPTH = 128  # as admission.max_json_depth's default; manifests nest about 15 levels
MAX_EXPANDED_NODES = 1_000_000  # values per document once every alias is expanded


class YAMLTooLarge(yaml.YAMLError):
    """A document nested too deeply, expanding too far through aliases, or aliasing itself."""


class _BoundedLoader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise YAMLTooLarge(f"nested deeper than {MAX_DEPTH} levels (line {mark.line + 1})")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> Node | None:
        node: Node | None = super().compose_document()
        if node is not None:
            expanded = _expanded_size(node, {}, set())
            if expanded > MAX_EXPANDED_NODES:
                raise YAMLTooLarge(
                    f"a document stands for more than {MAX_EXPANDED_NODES:,} values once its aliases "
                    "are expanded: write it out, or use fewer aliases"
                )
        return node


def _expanded_size(node: Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """How many values ``node`` stands for with every alias written out (shared nodes counted
    once per use), capped just past the limit; a node that contains itself is refused."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:
        raise YAMLTooLarge("a document contains itself through an alias (a recursive anchor)")
    open_nodes.add(key)
    total = 1
    if isinstance(node, SequenceNode):
        children: list[Node] = list(node.value)
    elif isinstance(node, MappingNode):
        children = [part for pair in node.value for part in pair]
    else:
        children = []
    for child in children:
        total += _expanded_size(child, sizes, open_nodes)
        if total > MAX_EXPANDED_NODES:
            break
    open_nodes.discard(key)
    sizes[key] = total
    return total


def safe_load(text: str) -> Any:
    """``yaml.safe_load`` within the bounds above (YAMLTooLarge, a YAMLError, beyond them)."""
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def safe_load_all(text: str) -> list[Any]:
    """Every document of ``text``, as ``yaml.safe_load_all``, within the bounds above."""
    loader = _BoundedLoader(text)
    try:
        documents = []
        while loader.check_data():  # type: ignore[no-untyped-call]
            documents.append(loader.get_data())
        return documents
    finally:
        loader.dispose()
