"""Load order: parents before the children that reference them.

A child row that names its parent (by Id or by external id, ``Account.External_Id__c``) fails
when the parent is not in the org yet. So when several streams are drained together, the streams
are grouped into waves: a stream's wave comes after the waves of every stream whose object it
references; streams within one wave have no references between them and load in parallel.

References to the stream's own object (``Account.ParentId``) do not order streams; a cycle
between streams (A references B and B references A) is broken at an arbitrary edge, with a
warning, because no order satisfies both.

Within one batch, rows that name another row of the same batch as their parent by external id
(``Parent.External_Id__c`` pointing at a row whose ``External_Id__c`` holds that value: an
account hierarchy, a case and its parent case) are split into generations by
:func:`generations`, loaded one after the other, so every such parent exists before its children
are sent. A parent named by ``Id`` already exists and orders nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T", bound=Hashable)


def waves(items: Sequence[T], objects: Mapping[T, str],
          references: Mapping[T, Iterable[str]]) -> list[list[T]]:
    """Group ``items`` into waves so that every item comes after the items it depends on.

    Args:
        items: The sinks (or any hashable) to order; input order is kept within a wave.
        objects: The object each item loads.
        references: The objects each item's rows reference (parents).

    Returns:
        Waves, parents first. Every item appears exactly once.
    """
    by_object: dict[str, list[T]] = {}
    for item in items:
        by_object.setdefault(objects[item].lower(), []).append(item)
    depends: dict[T, set[T]] = {}
    for item in items:
        own = objects[item].lower()
        parents: set[T] = set()
        for name in references.get(item, ()):
            folded = name.lower()
            if folded == own:
                continue
            parents.update(by_object.get(folded, ()))
        parents.discard(item)
        depends[item] = parents
    done: set[T] = set()
    result: list[list[T]] = []
    remaining = list(items)
    while remaining:
        wave = [item for item in remaining if depends[item] <= done]
        if not wave:
            # A cycle: take the first remaining item anyway, so the others can follow it.
            stuck = remaining[0]
            logger.warning(
                "Streams reference each other in a cycle (%s waits for %s); loading %s first, "
                "so some of its references may not resolve",
                objects[stuck], ", ".join(sorted(objects[p] for p in depends[stuck] - done)),
                objects[stuck])
            wave = [stuck]
        result.append(wave)
        done.update(wave)
        remaining = [item for item in remaining if item not in done]
    return result


def generations(rows: Sequence[Mapping[str, Any]], links: Iterable[tuple[str, str]],
                normal: Callable[[str], Callable[[Any], Any]],
                key: str | None = None) -> list[list[int]]:
    """Split the rows of one object into generations, parents first (see the module doc).

    Args:
        rows: The rows, by canonical column.
        links: ``(relationship column, key column)`` pairs that point at the object itself, e.g.
            ``("Parent.External_Id__c", "External_Id__c")``.
        normal: How values of a key column compare (``FieldMapper.key_normaliser``).
        key: The column that names a row's record in its job (``FieldMapper.key_column``):
            a row never comes a generation before an earlier row of the same record, whose
            values it must overwrite (in one generation, the job collapses them in order).

    Returns:
        Row positions per generation, in input order within each; a single generation when no
        row's parent is in the batch. A row in a reference cycle goes in the generation where
        the cycle is met (Salesforce then fails what it cannot resolve).
    """
    parents: dict[int, list[int]] = {}
    for column, held in links:
        compare = normal(held)
        holders: dict[Any, int] = {}
        for position, row in enumerate(rows):
            value = row.get(held)
            if value is not None and value != "":
                holders.setdefault(compare(value), position)
        if not holders:
            continue
        for position, row in enumerate(rows):
            value = row.get(column)
            if value is None or value == "":
                continue
            parent = holders.get(compare(value))
            if parent is not None and parent != position:
                parents.setdefault(position, []).append(parent)
    if not parents:
        return [list(range(len(rows)))]
    # The previous row naming the same record: at least as deep (not one deeper).
    previous: dict[int, int] = {}
    if key is not None:
        compare = normal(key)
        last: dict[Any, int] = {}
        for position, row in enumerate(rows):
            value = row.get(key)
            if value is not None and value != "":
                folded = compare(value)
                if folded in last:
                    previous[position] = last[folded]
                last[folded] = position
    # Depth of each row: 0 without a parent in the batch, else one more than its deepest parent
    # (an explicit stack: hierarchies can be deeper than Python's recursion limit).
    unknown, visiting = -1, -2
    depth = [unknown] * len(rows)
    for start in range(len(rows)):
        stack = [start]
        while stack:
            position = stack[-1]
            if depth[position] == unknown:
                depth[position] = visiting
                stack.extend(p for p in parents.get(position, ()) if depth[p] == unknown)
                before = previous.get(position)
                if before is not None and depth[before] == unknown:
                    stack.append(before)
                continue
            stack.pop()
            if depth[position] == visiting:
                depth[position] = 1 + max((depth[p] for p in parents.get(position, ())
                                           if depth[p] >= 0), default=-1)
                before = previous.get(position)
                if before is not None and depth[before] > depth[position]:
                    depth[position] = depth[before]
    result: list[list[int]] = [[] for _ in range(max(depth) + 1)]
    for position, level in enumerate(depth):
        result[level].append(position)
    return result
