"""Load order: parents before the children that reference them.

A child row that names its parent (by Id or by external id, ``Account.External_Id__c``) fails
when the parent is not in the org yet. So when several streams are drained together, the streams
are grouped into waves: a stream's wave comes after the waves of every stream whose object it
references; streams within one wave have no references between them and load in parallel.

References to the stream's own object (``Account.ParentId``) do not order anything; a cycle
between streams (A references B and B references A) is broken at an arbitrary edge, with a
warning, because no order satisfies both.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import TypeVar

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
