"""Bulk 2.0 result sets read a page of rows at a time give the rows read one by one."""

from __future__ import annotations

import io

import pytest

from sfbulk.bulk2 import _iter_cells, _iter_pages
from sfbulk.csvcodec import iter_csv_rows
from sfbulk.errors import SalesforceError


class _Chunks:
    """A body that is not an io object: read in chunks through iter_csv_rows."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self._data.read(size)


BODY = ('"sf__Id","sf__Created",Name,Note\n'
        + "".join(f'"001{i:015d}","true","N {i}","say ""hi"", \U0001f389\nok"\n'
                  for i in range(25))).encode()


@pytest.mark.parametrize("wrap", [io.BytesIO, _Chunks])
@pytest.mark.parametrize("size", [1, 7, 25, 1000])
def test_pages_hold_the_rows_in_order(wrap, size):
    pages = list(_iter_pages(wrap(BODY), size))
    expected = list(iter_csv_rows([BODY]))
    assert all(page[0] == expected[0] for page in pages)
    assert [len(page) - 1 for page in pages] == [min(size, 25 - i) for i in range(0, 25, size)]
    assert [row for page in pages for row in page[1:]] == expected[1:]
    assert list(_iter_cells(wrap(BODY))) == expected


@pytest.mark.parametrize("wrap", [io.BytesIO, _Chunks])
def test_empty_and_header_only_bodies(wrap):
    assert list(_iter_pages(wrap(b""))) == []
    assert list(_iter_pages(wrap(b"Records not found for this query"))) == []
    assert list(_iter_pages(wrap(b"\xef\xbb\xbfA,B\n"))) == [[["A", "B"]]]


@pytest.mark.parametrize("wrap", [io.BytesIO, _Chunks])
def test_a_row_of_another_width_fails_after_the_rows_before_it(wrap):
    body = b"A,B\n1,2\n3,4\n5\n6,7\n"
    pages = _iter_pages(wrap(body), 10)
    assert next(pages) == [["A", "B"], ["1", "2"], ["3", "4"]]
    with pytest.raises(SalesforceError, match="a result row has 1 cells but the header has 2"):
        next(pages)
    cells = _iter_cells(wrap(body))
    assert [next(cells) for _ in range(3)] == [["A", "B"], ["1", "2"], ["3", "4"]]
    with pytest.raises(SalesforceError, match="has 1 cells"):
        next(cells)


def test_leaving_early_leaves_the_body_to_its_owner():
    body = io.BytesIO(BODY)
    pages = _iter_pages(body, 5)
    next(pages)
    pages.close()
    assert not body.closed
    body.close()
    body = io.BytesIO(BODY)
    pages = _iter_pages(body, 5)
    next(pages)
    body.close()  # the owner closed the body first: ending the pages must not fail
    pages.close()
