"""REST query and sObject Collections in the shared layer, against the emulator.

The REST path must hand tap and target exactly what the Bulk path does: the same cells (so
the same typed records) and results in the Bulk 1.0 shape.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from sfbulk.auth import SalesforceAuth
from sfbulk.bulk1 import RowResult
from sfbulk.bulk2 import Bulk2
from sfbulk.csvcodec import RecordTyper
from sfbulk.describe import Describer, readable_fields
from sfbulk.errors import SalesforceError
from sfbulk.http import SalesforceClient
from sfbulk.rest import (
    RestCollections,
    is_bulk_refusal,
    iter_rest_query,
    json_value,
    reference_field_name,
    rest_cell,
)
from sfbulk.soql import build_select
from tests.sfbulk.test_bulk1_client import DEMO


def _client(server) -> SalesforceClient:
    auth = SalesforceAuth.from_config({"login_url": server.url, **DEMO})
    return SalesforceClient(auth, max_retries=2, backoff_factor=0.01)


def test_cells_take_the_bulk_csv_form() -> None:
    assert [rest_cell(v) for v in (None, True, False, 12, Decimal("12.50"), Decimal("1E+2"),
                                   "2024-03-01T10:11:12.000+0000", "09:30:00.000Z")] == [
        "", "true", "false", "12", "12.50", "100", "2024-03-01T10:11:12.000Z", "09:30:00.000Z"]
    assert rest_cell("2024-03-01T10:11:12.000+0000", "string") == "2024-03-01T10:11:12.000+0000"
    assert rest_cell({"city": "Oslo"}) == '{"city":"Oslo"}'


def test_json_values_by_field_type() -> None:
    assert json_value("boolean", "false") is False
    assert json_value("double", Decimal("0.10")) == Decimal("0.10")
    assert json_value("int", "42") == Decimal("42")
    assert json_value("date", dt.date(2024, 2, 29)) == "2024-02-29"
    assert json_value("datetime", dt.datetime(2024, 2, 29, 1, 2, 3, tzinfo=dt.timezone.utc)) \
        == "2024-02-29T01:02:03.000Z"
    assert json_value("string", "") is None and json_value("string", None) is None
    with pytest.raises(ValueError, match="Flag__c: 'maybe' is not a boolean"):
        json_value("boolean", "maybe", field="Flag__c")
    assert reference_field_name("Account") == "AccountId"
    assert reference_field_name("Experience__r") == "Experience__c"


@pytest.mark.parametrize("object_name", ["Account", "Type_Sample__c", "Contact"])
def test_rest_query_types_exactly_as_the_bulk_query(demo_emulator, object_name: str) -> None:
    client = _client(demo_emulator)
    describe = Describer(client).describe(object_name)
    columns = [f["name"] for f in readable_fields(describe).fields]
    if object_name == "Contact":
        columns.append("Account.External_Id__c")  # a parent, flattened like a Bulk header
    types = {f["name"]: f["type"] for f in describe["fields"]}
    types["Account.External_Id__c"] = "string"
    soql = build_select(object_name, columns)
    typer = RecordTyper({c: types[c] for c in columns})
    with Bulk2(client).query(soql) as rows:
        bulk = sorted((typer.row_converter(list(r))(list(r.values())) for r in rows),
                      key=lambda r: r["Id"])
    rest = sorted((typer.row_converter(list(r))(list(r.values()))
                   for r in iter_rest_query(client, soql, columns=columns, field_types=types)),
                  key=lambda r: r["Id"])
    assert len(rest) == demo_emulator.state.org.count(object_name) > 0
    assert rest == bulk


def test_rest_query_follows_next_records_url_and_reads_deleted_rows(emulator_factory) -> None:
    server = emulator_factory(query_page_size=200)
    org = server.state.org
    org.write("Account", "insert", [{"Name": f"A{n:03d}"} for n in range(450)])
    org.write("Account", "delete", [{"Id": r[0]} for r in org.execute_sql(
        'SELECT "Id" FROM "Account" WHERE "Name" < ?', ["A010"])])
    client = _client(server)
    calls = client.api_calls
    names = [r["Name"] for r in iter_rest_query(client, "SELECT Name FROM Account")]
    assert names == [f"A{n:03d}" for n in range(10, 450)]
    assert client.api_calls - calls == 3  # 440 rows, 200 a page
    rows = list(iter_rest_query(client, "SELECT Name, IsDeleted FROM Account", True))
    assert len(rows) == 450 and rows[0] == {"Name": "A000", "IsDeleted": "true"}


def test_collections_write_in_chunks_with_results_in_bulk_shape(emulator) -> None:
    client = _client(emulator)
    rest = RestCollections(client)
    accounts = [{"Name": f"Acct {n}", "External_Id__c": f"A{n}"} for n in range(450)]
    accounts[3] = {"External_Id__c": "A3"}  # no Name: fails alone
    results = rest.write("Account", "insert", accounts, field_types={"Name": "string"})
    assert rest.calls == 3 and len(results) == 450
    assert results[3] == RowResult(None, False, False,
                                   "REQUIRED_FIELD_MISSING:Required fields are missing: "
                                   "[Name]:Name --")
    assert results[0] == RowResult("0015g0000000001AAA", True, True, None)
    assert sum(r.success for r in results) == 449
    contacts = [
        {"External_Id__c": "C1", "LastName": "Lovelace", "Account.External_Id__c": "A1",
         "Birthdate": dt.date(1815, 12, 10), "MailingLatitude": Decimal("59.913868000000001")},
        {"External_Id__c": "C2", "LastName": "Hopper", "Account.External_Id__c": "A2"},
    ]
    types = {"Birthdate": "date", "MailingLatitude": "double"}
    first = rest.write("Contact", "upsert", contacts, "External_Id__c", field_types=types)
    assert [(r.success, r.created) for r in first] == [(True, True), (True, True)]
    contacts[1] = {"External_Id__c": "C2", "LastName": "Hopper", "Account.External_Id__c": None}
    again = rest.write("Contact", "upsert", contacts, "External_Id__c", field_types=types)
    assert [(r.id, r.success, r.created) for r in again] == [
        (first[0].id, True, False), (first[1].id, True, False)]
    stored = emulator.state.org.execute_sql(
        'SELECT "LastName", "Birthdate", "MailingLatitude", "AccountId" FROM "Contact" '
        'ORDER BY "Id"')
    assert stored == [("Lovelace", "1815-12-10", 59.913868, results[1].id),
                      ("Hopper", None, None, None)]
    updated = rest.write("Account", "update", [{"Id": results[0].id, "NumberOfEmployees": 7}],
                         field_types={"NumberOfEmployees": "int"})
    assert updated == [RowResult(results[0].id, True, False, None)]
    deleted = rest.write("Account", "delete", [{"Id": results[0].id}, {"Id": "001bad"}])
    assert deleted == [RowResult(results[0].id, True, False, None),
                       RowResult(None, False, False, "MALFORMED_ID:malformed id 001bad: --")]
    with pytest.raises(ValueError, match="cannot hardDelete"):
        rest.write("Account", "hardDelete", [{"Id": results[1].id}])


def test_bulk_refusal_is_told_from_other_errors() -> None:
    refused = SalesforceError("Store__c is not supported by the Bulk API", code="INVALIDENTITY")
    unknown = SalesforceError("Unable to find object: Nope__c", code="INVALIDENTITY")
    assert is_bulk_refusal(refused)
    assert is_bulk_refusal(SalesforceError(
        "Entity 'Store__c' is not supported by the Bulk API.", code="InvalidEntity"))
    assert not is_bulk_refusal(unknown)
    assert not is_bulk_refusal(ValueError("INVALIDENTITY"))
