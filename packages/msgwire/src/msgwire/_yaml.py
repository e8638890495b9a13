"""YAML codec, ``application/x-yaml``; needs ``msgwire[yaml]``. Safe loading only.

Written with PyYAML's safe dumper, as kombu writes it: datetime, date and bytes
are native YAML (timestamps, ``!!binary``); time, Decimal and UUID travel as the
same tag maps as in JSON; tuples become sequences; sets are refused as in JSON.
Loading uses the safe loader and refuses documents whose aliases would expand
beyond ``max_nodes`` nodes (the "billion laughs" attack) or refer to themselves.
Options: ``max_nodes`` (default 1,000,000) and ``max_size`` (bytes of input,
default 64 MiB).
"""

from __future__ import annotations

import functools
from datetime import time
from decimal import Decimal
from typing import Any
from uuid import UUID

from ._tags import tag, untag_object
from .base import DEFAULT_MAX_SIZE, Codec, check_size
from .errors import DecodeError, EncodeError, MissingDependencyError

__all__ = ["YamlCodec"]

DEFAULT_MAX_NODES = 1_000_000


def _node_weights(yaml: Any, root: Any, limit: int) -> None:
    """Refuse a composed node graph that is cyclic or expands past *limit* nodes."""
    weights: dict[int, int] = {}
    in_progress: set[int] = set()
    # Iterative post-order walk: nested input must not exhaust the C stack.
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            in_progress.discard(key)
            children = _children(yaml, node)
            weight = 1 + sum(weights[id(child)] for child in children)
            if weight > limit:
                raise DecodeError(
                    f"YAML document expands to more than {limit} nodes through "
                    "aliases; refusing it",
                )
            weights[key] = weight
            continue
        if key in weights:
            continue
        if key in in_progress:
            raise DecodeError("YAML document has an alias that refers to itself")
        in_progress.add(key)
        stack.append((node, True))
        stack.extend(
            (child, False)
            for child in _children(yaml, node)
            if id(child) not in weights
        )


def _children(yaml: Any, node: Any) -> list[Any]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


@functools.cache
def _yaml_classes() -> tuple[Any, Any, type[Any]]:
    """Import PyYAML and build our dumper and loader (once, on first use)."""
    try:
        import yaml
    except ImportError:
        raise MissingDependencyError("YAML codec", "yaml") from None

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    def represent_tagged(dumper: Dumper, data: Any) -> Any:
        return dumper.represent_dict(tag(data))

    def represent_other(dumper: Dumper, data: Any) -> Any:
        # Subclasses of builtins (IntEnum, a str subclass) go as their base type,
        # as they do in JSON; anything else goes through tag(), which refuses it.
        builtins: tuple[Any, ...] = (bool, int, float, str, list, dict)
        for base in builtins:
            if isinstance(data, base):
                return dumper.represent_data(base(data))
        if isinstance(data, tuple):
            return dumper.represent_list(list(data))
        return dumper.represent_dict(tag(data))

    Dumper.add_representer(tuple, yaml.SafeDumper.represent_list)
    for tagged in (time, Decimal, UUID):
        Dumper.add_representer(tagged, represent_tagged)
    for refused in (set, frozenset):
        Dumper.add_representer(refused, represent_other)
    Dumper.add_multi_representer(object, represent_other)

    class Loader(yaml.SafeLoader):
        max_nodes = DEFAULT_MAX_NODES

        def get_single_node(self) -> Any:
            node = super().get_single_node()
            if node is not None:
                _node_weights(yaml, node, self.max_nodes)
            return node

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
            return untag_object(mapping)

    # SafeLoader builds mappings with a generator that fills the dict after
    # handing it out; tags can only be resolved on a complete mapping.
    def construct_map(loader: Loader, node: Any) -> Any:
        return loader.construct_mapping(node, deep=True)

    Loader.add_constructor("tag:yaml.org,2002:map", construct_map)
    return yaml, Dumper, Loader


class YamlCodec(Codec):
    """YAML through PyYAML's safe dumper and loader."""

    name = "yaml"
    content_type = "application/x-yaml"
    content_encoding = "utf-8"

    def __init__(
        self, *, max_nodes: int = DEFAULT_MAX_NODES, max_size: int = DEFAULT_MAX_SIZE
    ) -> None:
        self.max_size = max_size
        if max_nodes < 1:
            raise ValueError(f"max_nodes must be at least 1, got {max_nodes}")
        self.max_nodes = max_nodes
        self._yaml, self._dumper, loader = _yaml_classes()
        self._loader = type("BoundedLoader", (loader,), {"max_nodes": max_nodes})

    def dumps(self, obj: Any) -> bytes:
        """Serialize *obj* as one YAML document.

        Raises:
            EncodeError: *obj* holds an unsupported type or a reference cycle.
        """
        try:
            text: str = self._yaml.dump(obj, Dumper=self._dumper)
        except EncodeError:
            raise
        except (self._yaml.YAMLError, RecursionError, TypeError, ValueError) as exc:
            raise EncodeError(f"cannot serialize to YAML: {exc}") from exc
        return text.encode("utf-8")

    def loads(self, data: bytes) -> Any:
        """Load one YAML document with the safe loader.

        Raises:
            DecodeError: *data* is not valid YAML or UTF-8, holds several
                documents, a Python-specific tag, or too many aliases.
            SizeLimitError: *data* is larger than ``max_size``.
        """
        check_size(data, self.max_size, "YAML body")
        try:
            return self._yaml.load(data, Loader=self._loader)
        except DecodeError:
            raise
        except (self._yaml.YAMLError, RecursionError, ValueError, TypeError) as exc:
            raise DecodeError(f"invalid YAML: {exc}") from exc
