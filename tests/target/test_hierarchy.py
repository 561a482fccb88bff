"""Records whose parent is a record of the same object in the same batch load parents first."""

from __future__ import annotations

import pytest

from target_sfbulk.ordering import generations
from tests.target.support import add_external_id, config, record, rows, run, schema, state

EXT = "External_Id__c"


def _folded(_column: str):
    return str.lower


def test_generations_follow_the_hierarchy_and_keep_input_order():
    batch = [
        {"Name": "grandchild", EXT: "G", "Parent.External_Id__c": "c"},
        {"Name": "child", EXT: "C", "Parent.External_Id__c": "R"},
        {"Name": "root", EXT: "R"},
        {"Name": "outside parent", EXT: "O", "Parent.External_Id__c": "not-in-batch"},
        {"Name": "second child", EXT: "C2", "Parent.External_Id__c": "r"},
    ]
    links = [("Parent.External_Id__c", EXT)]
    assert generations(batch, links, _folded) == [[2, 3], [1, 4], [0]]
    assert generations(batch, [], _folded) == [[0, 1, 2, 3, 4]]


def test_a_cycle_still_gives_every_row_once():
    batch = [{EXT: "A", "Parent.External_Id__c": "B"}, {EXT: "B", "Parent.External_Id__c": "A"},
             {EXT: "C", "Parent.External_Id__c": "A"}]
    levels = generations(batch, [("Parent.External_Id__c", EXT)], _folded)
    assert sorted(i for level in levels for i in level) == [0, 1, 2]
    assert levels.index(next(lvl for lvl in levels if 2 in lvl)) > levels.index(
        next(lvl for lvl in levels if 0 in lvl))


def test_a_long_chain_needs_no_recursion():
    batch = [{EXT: f"K{i}", "Parent.External_Id__c": f"K{i - 1}"} for i in range(3000, 0, -1)]
    batch.append({EXT: "K0"})
    levels = generations(batch, [("Parent.External_Id__c", EXT)], _folded)
    assert len(levels) == 3001 and levels[0] == [3000] and levels[-1] == [0]


@pytest.mark.parametrize("api", ["2.0", "1.0"])
def test_account_hierarchy_in_one_stream_loads_with_every_parent_set(emulator, api):
    add_external_id(emulator, "Account")
    props = {"Name": {"type": "string"}, EXT: {"type": "string"},
             "Parent": {"type": ["object", "null"], "properties": {EXT: {"type": "string"}}}}
    accounts = [("Leaf 1", "L1", "M1"), ("Leaf 2", "L2", "M1"), ("Middle", "M1", "R1"),
                ("Root", "R1", None), ("Other root", "R2", None), ("Leaf 3", "L3", "R2")]
    messages = [schema("Account", props, key=[EXT])]
    for name, key, parent in accounts:
        values = {"Name": name, EXT: key}
        if parent:
            values["Parent"] = {EXT: parent}
        messages.append(record("Account", values))
    messages.append(state({"done": True}))
    states, target = run(config(emulator, action="upsert", bulk_api=api), messages)
    assert states == [{"done": True}]
    stored = dict(rows(emulator, "SELECT External_Id__c, Parent.External_Id__c FROM Account"))
    assert stored == {"L1": "M1", "L2": "M1", "M1": "R1", "R1": None, "R2": None, "L3": "R2"}
    tally = target.tally.streams()["Account"]
    assert (tally.received, tally.successful, tally.not_loaded) == (6, 6, 0)


def test_a_key_given_twice_keeps_input_order_across_generations(emulator):
    # K1 first names a parent in the batch (so it waits a generation), then comes again
    # without one: the later values must still land last, as two upserts in input order would.
    add_external_id(emulator, "Account")
    props = {"Name": {"type": "string"}, EXT: {"type": "string"},
             "Parent": {"type": ["object", "null"], "properties": {EXT: {"type": "string"}}}}
    messages = [schema("Account", props, key=[EXT]),
                record("Account", {EXT: "K1", "Name": "old", "Parent": {EXT: "P"}}),
                record("Account", {EXT: "P", "Name": "parent"}),
                record("Account", {EXT: "K1", "Name": "new"})]
    _, target = run(config(emulator, action="upsert"), messages)
    stored = rows(emulator, "SELECT External_Id__c, Name, Parent.External_Id__c FROM Account")
    assert sorted(stored) == [("K1", "new", "P"), ("P", "parent", None)]
    tally = target.tally.streams()["Account"]
    assert (tally.received, tally.successful) == (3, 3)


def test_rows_sharing_a_key_never_come_a_generation_before_an_earlier_one():
    # The later k1 joins its earlier K1's generation (the job collapses them in input order);
    # a later row with a parent of its own still goes after it.
    batch = [{EXT: "K1", "Parent.External_Id__c": "P"}, {EXT: "P"}, {EXT: "k1"},
             {EXT: "Q"}, {EXT: "Q", "Parent.External_Id__c": "K1"}, {EXT: "R"}]
    links = [("Parent.External_Id__c", EXT)]
    assert generations(batch, links, _folded, key=EXT) == [[1, 3, 5], [0, 2], [4]]
    assert generations(batch, links, _folded) == [[1, 2, 3, 5], [0], [4]]
