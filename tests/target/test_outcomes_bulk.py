"""The result joins taken in runs give exactly what joining row by row gives.

Every case feeds the same upload and the same result pages to a :class:`ResultJoiner` that takes
runs of rows whole (``bulk=True``, the default) and to one that joins every row on its own
(``bulk=False``), and compares the outcomes, or the error, exactly.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from sfbulk.csvcodec import iter_csv_rows
from sfbulk.ids import to18
from target_sfbulk import outcomes as outcomes_module
from target_sfbulk.outcomes import (
    FAILED,
    SUCCESS,
    UNPROCESSED,
    Outcome,
    ResultJoiner,
    ResultJoinError,
    _norm_id_key,
    cell_normaliser,
)

HEADER = ["Name", "NumberOfEmployees", "AnnualRevenue", "IsActive__c", "Description"]
TYPES = {"Name": "string", "NumberOfEmployees": "int", "AnnualRevenue": "currency",
         "IsActive__c": "boolean", "Description": "textarea"}


def _join(header: Sequence[str], sent: list[list[str]], pages: list[tuple[str, list[list[str]]]],
          *, bulk: bool, key_column: str | None = None, types: dict[str, str] = TYPES,
          unprocessed_message: str | None = None,
          columns: bool = False) -> list[Outcome] | tuple[str, str]:
    rows = [list(r) for r in sent]
    if columns:  # given the upload's cells by column, as the batcher keeps them
        width = len(header)
        by_column = [[row[i] if i < len(row) else "" for row in rows] for i in range(width)]
        joiner = ResultJoiner(header, None, types, key_column=key_column,
                              job_id="750J", columns=by_column)
    else:
        joiner = ResultJoiner(header, rows, types, key_column=key_column, job_id="750J",
                              bulk=bulk)
    try:
        for kind, page in pages:
            joiner.add_page(kind, [list(r) for r in page])
        return joiner.finish(unprocessed_message=unprocessed_message)
    except ResultJoinError as exc:
        return (type(exc).__name__, str(exc))


def _both(header: Sequence[str], sent: list[list[str]], pages: list[tuple[str, list[list[str]]]],
          **kw: object) -> list[Outcome] | tuple[str, str]:
    whole = _join(header, sent, pages, bulk=True, **kw)  # type: ignore[arg-type]
    alone = _join(header, sent, pages, bulk=False, **kw)  # type: ignore[arg-type]
    assert whole == alone
    by_columns = _join(header, sent, pages, bulk=True, columns=True,  # type: ignore[arg-type]
                       **kw)
    assert by_columns == alone
    return whole


def _echo(row: Sequence[str]) -> list[str]:
    """A row as successfulResults echoes it: numbers and booleans reformatted."""
    name, employees, revenue, active, text = row
    return [name, str(int(float(employees))) if employees not in ("", "#N/A") else employees,
            repr(float(revenue)) if revenue not in ("", "#N/A") else revenue,
            {"1": "true", "0": "false"}.get(active, active), text]


def _sent_rows(count: int, rng: random.Random, *, duplicates: bool) -> list[list[str]]:
    rows = []
    for i in range(count):
        name = f"Acme {rng.randrange(count // 3 + 1)}" if duplicates else f"Acme {i}"
        rows.append([name, rng.choice(["3", "3.0", "12", "#N/A", ""]),
                     rng.choice(["1250", "1250.0", "0.5", "9.12260031E8", "#N/A"]),
                     rng.choice(["1", "0", "true", "false"]),
                     rng.choice(["plain", 'say "hi", then\nleave', "émoji 🎉", "", "#N/A"])])
    return rows


def _pages(sent: list[list[str]], rng: random.Random, *, reformat: float, fail: float,
           unprocessed: float, page_rows: int,
           shuffle: bool = True) -> list[tuple[str, list[list[str]]]]:
    good, bad, left = [], [], []
    for i, row in enumerate(sent):
        draw = rng.random()
        if draw < fail:
            bad.append([f"001{i:015d}"[:18] if rng.random() < 0.3 else "",
                        rng.choice(["REQUIRED_FIELD_MISSING:Required fields are missing: "
                                    "[Name]:Name --", "DUPLICATE_VALUE:dup:Ext__c --", "odd"]),
                        *row])
        elif draw < fail + unprocessed:
            left.append(list(row))
        else:
            echoed = _echo(row) if rng.random() < reformat else list(row)
            good.append([to18(f"001000000{i:06d}"), rng.choice(["true", "false", "TRUE"]),
                         *echoed])
    for rows in (good, bad, left):
        if shuffle:
            rng.shuffle(rows)
    pages: list[tuple[str, list[list[str]]]] = []
    for kind, head, rows in (("successful", ["sf__Id", "sf__Created"], good),
                             ("failed", ["sf__Id", "sf__Error"], bad),
                             ("unprocessed", [], left)):
        for start in range(0, len(rows), page_rows):
            pages.append((kind, [[*head, *HEADER], *rows[start:start + page_rows]]))
    return pages


@pytest.mark.parametrize("seed", range(12))
def test_insert_runs_match_row_by_row(seed, monkeypatch):
    rng = random.Random(seed)
    monkeypatch.setattr(outcomes_module, "_BLOCK_ROWS", rng.choice([7, 50, 10_000]))
    sent = _sent_rows(rng.choice([1, 40, 300]), rng, duplicates=seed % 3 == 0)
    pages = _pages(sent, rng, reformat=rng.choice([0.0, 0.05, 1.0]),
                   fail=rng.choice([0.0, 0.1]), unprocessed=rng.choice([0.0, 0.05]),
                   page_rows=rng.choice([5, 1000]))
    result = _both(HEADER, sent, pages)
    assert isinstance(result, list) and len(result) == len(sent)
    assert {o.status for o in result} <= {SUCCESS, FAILED, UNPROCESSED}


@pytest.mark.parametrize("seed", range(12))
def test_results_in_upload_order_match_row_by_row(seed, monkeypatch):
    """Pages in upload order (as the emulator writes them), some rows reformatted, failed or
    unprocessed: the in-order path, the runs and row by row agree, for content and for keys."""
    rng = random.Random(seed)
    monkeypatch.setattr(outcomes_module, "_BLOCK_ROWS", rng.choice([7, 50, 10_000]))
    sent = _sent_rows(rng.choice([1, 40, 300]), rng, duplicates=seed % 3 == 0)
    pages = _pages(sent, rng, reformat=rng.choice([0.0, 0.0, 0.05]),
                   fail=rng.choice([0.0, 0.0, 0.1]), unprocessed=rng.choice([0.0, 0.05]),
                   page_rows=rng.choice([5, 1000]), shuffle=False)
    result = _both(HEADER, sent, pages)
    assert isinstance(result, list) and len(result) == len(sent)
    # Keyed: every row with its Id first, one in ten failed, the rest echoed (some reformatted).
    keyed_sent = [[f"001{i:015d}", *row] for i, row in enumerate(sent)]
    good = [["sf__Id", "sf__Created", "Id", *HEADER]]
    bad = [["sf__Id", "sf__Error", "Id", *HEADER]]
    for row in keyed_sent:
        if rng.random() < 0.1:
            bad.append([row[0], "ENTITY_IS_DELETED:entity is deleted:--", *row])
        else:
            echoed = [row[0], *_echo(row[1:])] if rng.random() < 0.05 else row
            good.append([row[0], "false", *echoed])
    keyed = _both(["Id", *HEADER], keyed_sent, [("successful", good), ("failed", bad)],
                  key_column="Id", types={**TYPES, "Id": "id"})
    assert isinstance(keyed, list) and len(keyed) == len(sent)


def test_in_order_results_never_index_the_upload(monkeypatch):
    """Results that are the uploaded rows in order are joined from the cells by column alone;
    the first block that is not makes the joiner index the rows, once, and join the rest."""
    sent = [[f"Acme {i}", str(i), f"{i}.5", "true", f'text, "{i}"\n'] for i in range(300)]
    reads = []
    upload = {"columns": [list(column) for column in zip(*sent)]}
    index = ResultJoiner._index_upload

    def read(self, rows) -> None:
        assert rows == sent  # the rows, as the columns hold them
        reads.append(1)
        index(self, rows)

    monkeypatch.setattr(ResultJoiner, "_index_upload", read)

    page = [["sf__Id", "sf__Created", *HEADER],
            *[[f"001{i:015d}", "true", *row] for i, row in enumerate(sent)]]
    joiner = ResultJoiner(HEADER, None, TYPES, job_id="750J", **upload)
    assert joiner.add_page("successful", page) == 300
    assert reads == []
    assert [o.id for o in joiner.finish()] == [f"001{i:015d}" for i in range(300)]

    head, results = page[0], [row[:] for row in page[1:]]
    results[249][4] = "249.50"  # reformatted: not its uploaded line, the same value
    joiner = ResultJoiner(HEADER, None, TYPES, job_id="750J", **upload)
    joiner.add_page("successful", [head, *results[:200]])  # rows 0-199 as uploaded
    assert reads == []
    joiner.add_page("successful", [head, *results[:199:-1]])  # the rest backwards
    assert reads == [1]
    assert [o.id for o in joiner.finish()] == [f"001{i:015d}" for i in range(300)]


def test_insert_common_case_exact_outcomes():
    sent = [[f"Acme {i}", str(i), f"{i}.5", "true", f'text, "{i}"'] for i in range(100)]
    page = [["sf__Id", "sf__Created", *HEADER]]
    page += [[f"001{i:015d}", "true", *row] for i, row in reversed(list(enumerate(sent)))]
    page[5][1] = "TRUE"  # an odd sf__Created spelling still reads as true
    page[7][0] = ""  # no id: None
    out = _both(HEADER, sent, [("successful", page)])
    assert isinstance(out, list)
    assert out[99] == Outcome(SUCCESS, f"001{99:015d}", True, job_id="750J")
    assert out[95] == Outcome(SUCCESS, f"001{95:015d}", True, job_id="750J")
    assert out[93] == Outcome(SUCCESS, None, True, job_id="750J")
    assert [o.id for o in out][:3] == [f"001{i:015d}" for i in range(3)]


def test_insert_duplicate_contents_take_results_in_upload_order():
    sent = [["Same", "1", "2.0", "true", "x"]] * 40 + [["Other", "1", "2", "1", "y"]]
    page = [["sf__Id", "sf__Created", *HEADER]]
    page += [[f"001{i:015d}", "true", "Same", "1", "2.0", "true", "x"] for i in range(40)]
    page += [["001X", "false", "Other", "1", "2.0", "true", "y"]]
    out = _both(HEADER, sent, [("successful", page)])
    assert isinstance(out, list)
    assert [o.id for o in out] == [f"001{i:015d}" for i in range(40)] + ["001X"]
    assert out[40].created is False


@pytest.mark.parametrize("case", ["extra", "missing", "twice", "unmatched_late"])
def test_insert_errors_are_the_same(case):
    sent = [[f"Acme {i}", str(i), "1.5", "true", "t"] for i in range(100)]
    rows = [[f"001{i:015d}", "true", *row] for i, row in enumerate(sent)]
    if case == "extra":
        rows.append(["001Z", "true", "Nobody", "1", "1.5", "true", "t"])
    elif case == "missing":
        rows.pop(50)
    elif case == "twice":
        rows.insert(70, list(rows[10]))
    else:
        rows[90][3] = "99"  # a typed cell that normalises differently
    out = _both(HEADER, sent, [("successful", [["sf__Id", "sf__Created", *HEADER], *rows])])
    assert isinstance(out, tuple) and out[0] == "ResultJoinError"
    expected = {
        "extra": "a successful result row matches no uploaded row",
        "missing": "1 of 100 uploaded rows have no result row (first: row 51)",
        "twice": "matches no uploaded row (or more results than rows share its values): "
                 "Acme 10,10,1.5,true,t",
        "unmatched_late": "Acme 90,99,1.5,true,t",
    }[case]
    assert expected in out[1]


def test_missing_rows_are_unprocessed_when_the_job_failed():
    sent = [[f"Acme {i}", "1", "1.5", "true", "t"] for i in range(50)]
    rows = [[f"001{i:015d}", "true", *row] for i, row in enumerate(sent) if i % 2]
    out = _both(HEADER, sent, [("successful", [["sf__Id", "sf__Created", *HEADER], *rows])],
                unprocessed_message="job Failed: boom")
    assert isinstance(out, list)
    assert out[0] == Outcome(UNPROCESSED, None, None, "UNPROCESSED", "job Failed: boom",
                             job_id="750J")
    assert out[1].ok


def test_short_rows_and_columns_in_another_order():
    header = ["Name", "NumberOfEmployees", "Description"]
    types = {"NumberOfEmployees": "int"}
    sent = [[f"N{i}", str(i)] for i in range(60)]  # short: Description is empty
    page = [["Description", "sf__Created", "NumberOfEmployees", "Name", "sf__Id"]]
    page += [["", "true", f"{i}.0", f"N{i}", f"001{i:015d}"] for i in range(60)]
    page += []
    out = _both(header, sent, [("successful", page)], types=types)
    assert isinstance(out, list) and [o.id for o in out] == [f"001{i:015d}" for i in range(60)]
    short = [["sf__Id", "sf__Created", "Name", "NumberOfEmployees"]]
    short += [[f"001{i:015d}", "true", f"N{i}"] for i in range(60)]  # result rows short too
    out = _both(header, [[f"N{i}", ""] for i in range(60)], [("successful", short)],
                types=types)
    assert isinstance(out, tuple) and "lacks the uploaded column(s) Description" in out[1]


def test_failed_and_unprocessed_pages_in_runs():
    sent = [[f"Acme {i}", "1", "1.5", "true", "t"] for i in range(80)]
    failed = [["sf__Id", "sf__Error", *HEADER]]
    failed += [["", "REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --", *row]
               for row in sent[:40]]
    left = [HEADER, *sent[40:]]
    out = _both(HEADER, sent, [("failed", failed), ("unprocessed", left)])
    assert isinstance(out, list)
    assert out[0] == Outcome(FAILED, None, None, "REQUIRED_FIELD_MISSING",
                             "Required fields are missing: [Name]", ("Name",), "750J")
    assert out[79].status == UNPROCESSED and out[79].job_id == "750J"


# -- keyed -----------------------------------------------------------------------------------


def _ids(count: int, rng: random.Random) -> list[str]:
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    return ["001" + "".join(rng.choice(alphabet) for _ in range(12)) for _ in range(count)]


@pytest.mark.parametrize("seed", range(8))
def test_keyed_runs_match_row_by_row(seed, monkeypatch):
    rng = random.Random(seed)
    monkeypatch.setattr(outcomes_module, "_BLOCK_ROWS", rng.choice([9, 10_000]))
    header = ["Id", "Name"]
    ids15 = _ids(rng.choice([1, 50, 200]), rng)
    sent = [[rng.choice([i, to18(i)]), f"n{j}"] for j, i in enumerate(ids15)]
    if seed % 4 == 0 and len(sent) > 3:  # one record twice, in both forms
        sent[2][0] = to18(ids15[1]) if sent[1][0] == ids15[1] else ids15[1]
    results = []
    for row in sent:
        echoed = rng.choice([row[0], to18(row[0]), row[0].lower()])
        results.append([echoed, "false", echoed, row[1]])
    rng.shuffle(results)
    cut = len(results) // 3
    pages = [("successful", [["sf__Id", "sf__Created", *header], *results[cut:]]),
             ("failed", [["sf__Id", "sf__Error", *header],
                         *[[r[0], "ENTITY_IS_DELETED:gone: --", *r[2:]] for r in results[:cut]]])]
    _both(header, sent, pages, key_column="Id", types={"Id": "id"})


@pytest.mark.parametrize("fold", [True, False])
def test_keyed_external_ids_fold_case_alike(fold):
    header = ["Ext__c", "Name"]
    sent = [[f"Key-{i}", "x"] for i in range(70)]
    results = [[f"001{i:015d}", "true", (f"KEY-{i}" if i % 7 == 0 else f"Key-{i}"), "x"]
               for i in range(70)]
    pages = [("successful", [["sf__Id", "sf__Created", *header], *results])]
    for bulk in (True, False):
        joiner = ResultJoiner(header, sent, {"Ext__c": "string"}, key_column="Ext__c",
                              fold_key_case=fold, job_id="750J", bulk=bulk)
        if fold:
            joiner.add_page("successful", pages[0][1])
            assert [o.id for o in joiner.finish()] == [f"001{i:015d}" for i in range(70)]
        else:
            with pytest.raises(ResultJoinError, match="KEY-0,x"):
                joiner.add_page("successful", pages[0][1])


def test_id_keys_normalise_as_before():
    rng = random.Random(5)
    normal = cell_normaliser("id")
    cells = [*_ids(300, rng), *(to18(i) for i in _ids(100, rng)), "", "#N/A", " 001ABC ",
             "001000000000001AAA".lower(), "00\uff11000000000001", "001é00000000001", "short"]
    cells += [f" {c} " for c in cells[:20]]
    assert [_norm_id_key(c) for c in cells] == [normal(c) for c in cells]


# -- reading the upload back ------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    b"A,B\n1,2\n3,4\n",
    b'A,B\n"x, y",2\n3,4\n',
    b'A,B\n"x, y","say ""hi"""\n"a","b"\n',
    b'A,B\n"line\nbreak",2\n3,4\n',
    b"A,B\r\n1,2\r\n3,4\r\n",
    b"\xef\xbb\xbfA,B\n1,2\n",
    "A,B\n\xe9\xe8,\U0001f389\n\"\U0001f389, x\",y\n".encode(),
    b"A\n\n1\n",
    b"A,B\n1,2",
    b"A,B\n1,\"2\n",
])
def test_upload_cells_read_like_the_csv_reader(body):
    from target_sfbulk.loader import upload_cells

    rows = body.count(b"\n") - 1
    try:
        expected: object = list(iter_csv_rows([body]))
    except Exception as exc:
        expected = type(exc)
    for count in {rows, rows - 1, rows + 1}:
        try:
            got: object = upload_cells(body, count)
        except Exception as exc:
            got = type(exc)
        assert got == expected


def test_upload_cells_mixed_quoting_many_rows():
    from target_sfbulk.loader import upload_cells

    rng = random.Random(3)
    lines = ["Name,Description"]
    for i in range(500):
        text = rng.choice(["plain", '"with, comma"', '"say ""hi"""', "émoji 🎉", '""'])
        lines.append(f"N{i},{text}")
    body = ("\n".join(lines) + "\n").encode()
    assert upload_cells(body, 500) == list(iter_csv_rows([body]))


def test_the_common_case_is_taken_in_runs(monkeypatch):
    """No row of an echoed-as-sent page goes row by row, for content and for keys."""
    def refuse(*_: object) -> None:
        raise AssertionError("joined row by row")

    monkeypatch.setattr(ResultJoiner, "_take_rows", refuse)
    sent = [[f"Acme {i}", str(i), f"{i}.5", "true", "t"] for i in range(500)]
    page = [["sf__Id", "sf__Created", *HEADER],
            *[[f"001{i:015d}", "true", *row] for i, row in enumerate(sent)]]
    page[1][4], page[1][5] = f"{0.5!r}", "true"  # a reformatted cell is still taken whole
    joiner = ResultJoiner(HEADER, sent, TYPES, job_id="750J")
    assert joiner.add_page("successful", page) == 500
    assert [o.id for o in joiner.finish()] == [f"001{i:015d}" for i in range(500)]
    keyed = ResultJoiner(["Id", "Name"], [[f"001{i:012d}", "n"] for i in range(500)],
                         {"Id": "id"}, key_column="Id")
    keyed.add_page("failed", [["sf__Id", "sf__Error", "Id", "Name"],
                              *[[f"001{i:012d}", "X:y: --", f"001{i:012d}", "n"]
                                for i in range(500)]])
    assert {o.code for o in keyed.finish()} == {"X"}
