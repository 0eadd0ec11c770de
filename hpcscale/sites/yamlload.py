"""Descriptors' YAML, read strictly: UTF-8, no duplicate keys, a bounded number of aliases.

PyYAML's ``safe_load`` keeps the last of two equal keys without a word, and an "anchor bomb" (a
few lines of nested aliases) expands to billions of nodes once validated. Here a duplicate key
is refused with its line, and a document is refused before it is built when it uses more
aliases than a descriptor needs (a streaming count of the parser's events: bounded time).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hpcscale.errors import DescriptorError

MAX_ALIASES = 100  # a descriptor reuses a block a few times, never hundreds
# What the document expands to, aliases resolved: nine anchors of nine aliases each stay under
# MAX_ALIASES and still make 9^9 nodes; a descriptor has hundreds.
MAX_NODES = 100_000


def expanded_nodes(events: Any, limit: int = MAX_NODES) -> int:
    """The nodes the parser's ``events`` build with every alias expanded, counted from the
    stream (an anchor's size is known when it closes), stopping past ``limit``."""
    sizes: dict[str, int] = {}
    stack: list[list[Any]] = []  # open collections: [anchor, nodes so far]
    total = 0
    for event in events:
        if isinstance(event, yaml.CollectionStartEvent):
            stack.append([event.anchor, 1])
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            anchor, n = stack.pop()
            if anchor:
                sizes[anchor] = n
        elif isinstance(event, yaml.ScalarEvent):
            n = 1
            if event.anchor:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            n = sizes.get(event.anchor, 1)
        else:
            continue
        if stack:
            stack[-1][1] += n
            n = stack[-1][1]
        else:
            total += n
            n = total
        if n > limit:
            return n
    return total


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping with the same key twice."""


def _mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {str(key)[:60]!r} (first on line {seen[key]})",
                key_node.start_mark,
            )  # fmt: skip
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load_yaml(path: Path) -> Any:
    """The document in ``path``; any problem is a ``DescriptorError`` naming the file and line."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise DescriptorError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise DescriptorError(
            f"{path}: not UTF-8 text (byte {exc.start}); save the descriptor as UTF-8"
        ) from None
    except OSError as exc:
        raise DescriptorError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        events = yaml.parse(text, Loader=yaml.SafeLoader)
        aliases = sum(isinstance(e, yaml.AliasEvent) for e in events)
        if aliases > MAX_ALIASES:
            raise DescriptorError(
                f"{path}: uses {aliases} YAML aliases (*name); a descriptor may use at most "
                f"{MAX_ALIASES}"
            )
        nodes = expanded_nodes(yaml.parse(text, Loader=yaml.SafeLoader))
        if nodes > MAX_NODES:
            raise DescriptorError(
                f"{path}: its YAML aliases (*name) expand to over {MAX_NODES:,} values; a "
                "descriptor has a few hundred: reuse blocks less deeply"
            )
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise DescriptorError(f"{path}{where}: not valid YAML: {problem}") from None
