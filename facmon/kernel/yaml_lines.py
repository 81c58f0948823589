"""YAML read with the line of every entry, so a problem found in the data can name the line a person has to edit.

`parse` returns the data as `yaml.safe_load` would (but for a date that does not exist, see `_Loader`), plus the
line of every mapping key and sequence item by its path (a tuple of keys and indexes, the shape of pydantic's error
`loc`). `Document.where` turns such a path into a line and words: `buildings[0].devices[2] (b1-e3): address.port`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Loc = tuple[int | str, ...]


@dataclass(frozen=True)
class Document:
    data: Any
    # 1-based line of each key (mappings) or item (sequences), by its path from the top of the document.
    lines: dict[Loc, int] = field(default_factory=dict)
    # Keys given twice in one mapping: YAML keeps the last one without a word, so the other is lost unseen.
    repeated_keys: list[Loc] = field(default_factory=list)

    def where(self, loc: Loc) -> tuple[int, str]:
        """The line and a readable path of `loc`: the entry (the innermost list item that is a mapping, with its
        id when it has one, else the top-level section) and, after ': ', the rest of the path within it."""
        node, path = self.data, list[int | str]()
        entry, label, found = min(len(loc), 1), "", True
        for part in loc:
            child = _child(node, part)
            found = child is not _MISSING
            if not found:  # a member of a union that pydantic names in the path, or a field that is missing
                continue
            node = child
            path.append(part)
            if isinstance(part, int) and isinstance(node, dict):
                entry = len(path)
                label = str(node["id"]) if isinstance(node.get("id"), str | int) else ""
        # The nearest line known: below an alias (*name) only the alias itself has one.
        line = next((self.lines[key] for n in range(len(path), 0, -1) if (key := tuple(path[:n])) in self.lines), 1)
        words = path if found else [*path, loc[-1]]
        head = dotted(words[:entry]) + (f" ({label})" if label else "")
        rest = dotted(words[entry:])
        return line, f"{head}: {rest}" if head and rest else head or rest or "(top level)"


_MISSING = object()


def _child(node: Any, part: int | str) -> Any:
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    if isinstance(node, dict) and part in node:
        return node[part]
    return _MISSING


def dotted(loc: Loc | list[int | str]) -> str:
    """('buildings', 0, 'devices', 2) -> 'buildings[0].devices[2]'."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


class _Loader(yaml.SafeLoader):
    """yaml.SafeLoader, but an unquoted date that does not exist (2026-02-30) stays text, so that the model says what
    is wrong with it at its line, instead of yaml failing with a ValueError that names neither."""

    def construct_timestamp(self, node: ScalarNode) -> object:
        try:
            return self.construct_yaml_timestamp(node)
        except ValueError:
            return self.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_timestamp)


def parse(text: str) -> Document:
    """The YAML document in `text` with its lines; raises yaml.YAMLError (with a mark) as yaml.safe_load would."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return Document(None)
        repeated: list[Loc] = []
        _repeats(node, (), repeated, set())
        data = loader.construct_document(node)
        lines: dict[Loc, int] = {}
        # After construction: merge keys (<<) have been flattened into the mappings that use them.
        _record(loader, node, (), lines, set())
        return Document(data, lines, repeated)
    finally:
        loader.dispose()


def _record(loader: _Loader, node: Node, loc: Loc, lines: dict[Loc, int], seen: set[int]) -> None:
    # A node seen before is an alias (*name): what is below it is found at the anchor, and the line of the alias
    # is the one to name. Walking it again could also take forever (recursive or exponentially nested aliases).
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if isinstance(key, str | int):
                lines[(*loc, key)] = key_node.start_mark.line + 1  # a key given twice: the last one counts
                _record(loader, value_node, (*loc, key), lines, seen)
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*loc, index)] = item.start_mark.line + 1
            _record(loader, item, (*loc, index), lines, seen)


def _repeats(node: Node, loc: Loc, repeated: list[Loc], seen: set[int]) -> None:
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, MappingNode):
        keys: set[tuple[str, str]] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.value == "<<":
                continue
            if (key_node.tag, key_node.value) in keys:
                repeated.append((*loc, key_node.value))
            keys.add((key_node.tag, key_node.value))
            _repeats(value_node, (*loc, key_node.value), repeated, seen)
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            _repeats(item, (*loc, index), repeated, seen)
