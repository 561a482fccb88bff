"""The emulator's REST API over real HTTP: versions, describe, limits, query, records, composite."""

from __future__ import annotations

import json
import re

import pytest
import requests
from starlette.requests import Request

from sfbulk.emulator import rest
from sfbulk.emulator.app import DAILY_BULK_API_BATCHES, DAILY_BULK_V2_QUERY_JOBS, STATIC_LIMITS
from tests.conftest import emulator_token

LIMIT_INFO = re.compile(r"^api-usage=(\d+)/(\d+)$")
DATETIME_REST = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$")


class Client:
    """A logged-in REST client for one emulator."""

    def __init__(self, server, version: str = "62.0") -> None:
        self.server = server
        self.base = f"{server.url}/services/data/v{version}"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {emulator_token(server)}"

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.session.get(self.base + path, timeout=10, **kwargs)

    def post(self, path: str, body, **kwargs) -> requests.Response:
        return self.session.post(self.base + path, json=body, timeout=10, **kwargs)

    def patch(self, path: str, body, **kwargs) -> requests.Response:
        return self.session.patch(self.base + path, json=body, timeout=10, **kwargs)

    def delete(self, path: str) -> requests.Response:
        return self.session.delete(self.base + path, timeout=10)

    def query(self, soql: str, kind: str = "query", **kwargs) -> requests.Response:
        return self.get(f"/{kind}", params={"q": soql}, **kwargs)


@pytest.fixture
def client(emulator):
    return Client(emulator)


def _fixture(fixtures_dir, *parts):
    return json.loads(fixtures_dir.joinpath("salesforce", *parts).read_text())


# --- versions ------------------------------------------------------------------------------


def test_versions_list_needs_no_session_and_is_not_counted(emulator):
    for path in ("/services/data", "/services/data/"):
        response = requests.get(emulator.url + path, timeout=10)
        assert response.status_code == 200
        versions = response.json()
        assert len(versions) == 47
        assert versions[0] == {
            "label": "Winter '11",
            "url": "/services/data/v20.0",
            "version": "20.0",
        }
        assert versions[-1] == {
            "label": "Spring '26",
            "url": "/services/data/v66.0",
            "version": "66.0",
        }
        by_version = {v["version"]: v["label"] for v in versions}
        assert by_version["59.0"] == "Winter '24"
        assert by_version["61.0"] == "Summer '24"
        assert by_version["62.0"] == "Winter '25"
        assert "sforce-limit-info" not in response.headers
    assert emulator.state.usage.used("DailyApiRequests") == 0


def test_every_version_is_served_alike(emulator):
    token = emulator_token(emulator)
    headers = {"Authorization": f"Bearer {token}"}
    bodies = set()
    for major in range(20, 67):
        response = requests.get(
            f"{emulator.url}/services/data/v{major}.0/sobjects/Account/describe",
            headers=headers,
            timeout=10,
        )
        assert response.status_code == 200, major
        body = response.json()
        assert body["urls"]["describe"] == f"/services/data/v{major}.0/sobjects/Account/describe"
        bodies.add(json.dumps(body).replace(f"v{major}.0", "vNN"))
    assert len(bodies) == 1


@pytest.mark.parametrize(
    ("version", "status", "code"),
    [
        ("19.0", 410, "GONE"),
        ("67.0", 404, "NOT_FOUND"),
        ("62.5", 404, "NOT_FOUND"),
        ("abc", 404, "NOT_FOUND"),
        ("62", 404, "NOT_FOUND"),
    ],
)
def test_unserved_versions(client, version, status, code):
    response = client.session.get(f"{client.server.url}/services/data/v{version}/limits")
    assert response.status_code == status
    assert response.json()[0]["errorCode"] == code


def test_version_resources(client):
    response = client.get("")
    assert response.status_code == 200
    assert response.json()["sobjects"] == "/services/data/v62.0/sobjects"
    assert response.json()["jobs"] == "/services/data/v62.0/jobs"


# --- sessions and usage --------------------------------------------------------------------


def test_missing_or_bad_session(emulator, fixtures_dir):
    recorded = fixtures_dir.joinpath("salesforce", "rest", "error_invalid_session_id.json")
    for headers in ({}, {"Authorization": "Bearer 00Dnot-a-session"}, {"Authorization": "Basic x"}):
        response = requests.get(
            f"{emulator.url}/services/data/v62.0/sobjects", headers=headers, timeout=10
        )
        assert response.status_code == 401
        assert response.content == recorded.read_bytes().strip()
        assert response.headers["content-type"] == "application/json"
        assert "sforce-limit-info" not in response.headers
    assert emulator.state.usage.used("DailyApiRequests") == 0


def test_sforce_limit_info_counts_every_call(client):
    seen = []
    for path in ("/sobjects", "/limits", "/sobjects/Account/describe", "/sobjects/Nope/describe"):
        header = client.get(path).headers["Sforce-Limit-Info"]
        match = LIMIT_INFO.match(header)
        assert match, header
        seen.append((int(match[1]), int(match[2])))
    assert seen == [(1, 15000), (2, 15000), (3, 15000), (4, 15000)]


def test_limits(client, fixtures_dir):
    recorded = _fixture(fixtures_dir, "rest", "limits.json")
    state = client.server.state
    state.usage.consume(DAILY_BULK_API_BATCHES, 3)
    state.usage.consume(DAILY_BULK_V2_QUERY_JOBS)
    client.get("/sobjects")
    response = client.get("/limits")
    assert response.status_code == 200
    limits = response.json()
    assert set(recorded) <= set(limits)
    assert set(limits) == {*recorded, "DailyBulkApiRequests"}
    assert list(limits) == sorted(limits)
    assert limits["DailyApiRequests"] == {"Max": 15000, "Remaining": 15000 - 2}
    assert limits["DailyBulkApiBatches"] == {"Max": 15000, "Remaining": 15000 - 3}
    assert limits["DailyBulkApiRequests"] == limits["DailyBulkApiBatches"]
    assert limits["DailyBulkV2QueryJobs"] == {"Max": 10000, "Remaining": 9999}
    assert limits["DailyBulkV2QueryFileStorageMB"] == {"Max": 976562, "Remaining": 976562}
    for name, maximum in STATIC_LIMITS.items():
        assert limits[name] == {"Max": maximum, "Remaining": maximum}
        assert recorded[name]["Max"] == maximum


def test_api_daily_limit_is_configurable(emulator_factory):
    server = emulator_factory(api_daily_limit=250)
    client = Client(server)
    assert client.get("/limits").json()["DailyApiRequests"] == {"Max": 250, "Remaining": 249}
    assert client.get("/limits").headers["Sforce-Limit-Info"] == "api-usage=2/250"


# --- describe ------------------------------------------------------------------------------


def test_describe_global(client, fixtures_dir):
    response = client.get("/sobjects")
    assert response.status_code == 200
    body = response.json()
    recorded = _fixture(fixtures_dir, "describe_global", "cumulusci_sobjects_subset.json")
    assert list(body) == list(recorded) == ["encoding", "maxBatchSize", "sobjects"]
    assert (body["encoding"], body["maxBatchSize"]) == ("UTF-8", 200)
    names = [entry["name"] for entry in body["sobjects"]]
    assert names == sorted(names, key=str.lower)
    entry = next(e for e in body["sobjects"] if e["name"] == "Account")
    recorded_entry = next(e for e in recorded["sobjects"] if e["name"] == "Account")
    assert list(entry) == list(recorded_entry)
    assert list(entry["urls"]) == list(recorded_entry["urls"])
    assert entry["urls"]["sobject"] == "/services/data/v62.0/sobjects/Account"
    assert entry["keyPrefix"] == "001"


def test_describe(client, fixtures_dir):
    response = client.get("/sobjects/Account/describe")
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "Account"
    assert list(body) == sorted(body)
    recorded = _fixture(fixtures_dir, "describe", "Contact.json")
    contact = client.get("/sobjects/contact/describe/").json()
    assert contact["name"] == "Contact"
    assert set(recorded) - {"sobjectDescribeOption"} <= set(contact)
    assert list(contact["fields"][0]) == list(recorded["fields"][0])


def test_describe_unknown_object(client, fixtures_dir):
    response = client.get("/sobjects/Nope__c/describe")
    assert response.status_code == 404
    assert response.json() == _fixture(fixtures_dir, "rest", "error_not_found.json")
    assert client.get("/sobjects/Nope__c").status_code == 404


def test_sobject_basic_info(client):
    response = client.get("/sobjects/Contact")
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["objectDescribe", "recentItems"]
    assert body["objectDescribe"]["name"] == "Contact"
    assert body["recentItems"] == []


# --- records -------------------------------------------------------------------------------


def test_record_lifecycle(client, fixtures_dir):
    created = client.post(
        "/sobjects/Account",
        {"Name": "Acme", "BillingCity": "Paris", "BillingCountry": "FR", "NumberOfEmployees": 12},
    )
    assert created.status_code == 201
    body = created.json()
    assert list(body) == ["id", "success", "errors"]
    assert body["success"] is True and body["errors"] == []
    account_id = body["id"]
    assert account_id.startswith("001") and len(account_id) == 18

    record = client.get(f"/sobjects/Account/{account_id}").json()
    recorded = _fixture(fixtures_dir, "rest", "record_account.json")
    assert (
        list(record)[:4]
        == list(recorded)[:4]
        == ["attributes", "Id", "IsDeleted", "MasterRecordId"]
    )
    assert record["attributes"] == {
        "type": "Account",
        "url": f"/services/data/v62.0/sobjects/Account/{account_id}",
    }
    assert record["Name"] == "Acme"
    assert record["IsDeleted"] is False
    assert record["NumberOfEmployees"] == 12
    assert DATETIME_REST.match(record["CreatedDate"])
    assert record["BillingAddress"] == {
        "city": "Paris",
        "country": "FR",
        "geocodeAccuracy": None,
        "latitude": None,
        "longitude": None,
        "postalCode": None,
        "state": None,
        "street": None,
    }
    assert list(record["BillingAddress"]) == list(recorded["BillingAddress"])
    assert record["ShippingAddress"] is None
    # 15-character ids work too; fields= narrows the record.
    narrow = client.get(f"/sobjects/Account/{account_id[:15]}", params={"fields": "Name,Phone"})
    assert narrow.json() == {
        "attributes": record["attributes"],
        "Name": "Acme",
        "Phone": None,
    }

    assert client.patch(f"/sobjects/Account/{account_id}", {"Phone": "555"}).status_code == 204
    assert client.get(f"/sobjects/Account/{account_id}").json()["Phone"] == "555"

    deleted = client.delete(f"/sobjects/Account/{account_id}")
    assert (deleted.status_code, deleted.content) == (204, b"")
    again = client.delete(f"/sobjects/Account/{account_id}")
    assert again.status_code == 404
    assert again.json() == _fixture(fixtures_dir, "rest", "error_entity_is_deleted.json")
    assert client.get(f"/sobjects/Account/{account_id}").status_code == 404
    assert client.patch(f"/sobjects/Account/{account_id}", {"Phone": "1"}).status_code == 404


def test_record_errors(client, fixtures_dir):
    response = client.post("/sobjects/Account", {"Name": "X", "Nmae": "typo"})
    assert response.status_code == 400
    assert response.json() == [
        {
            "message": "No such column 'Nmae' on sobject of type Account",
            "errorCode": "INVALID_FIELD",
        }
    ]
    response = client.post(
        "/sobjects/Account", {"Name": "X", "CreatedDate": "2020-01-01T00:00:00Z"}
    )
    recorded = _fixture(fixtures_dir, "rest", "error_invalid_field_for_insert_update.json")
    assert response.status_code == 400
    assert response.json() == [
        {
            **recorded[0],
            "message": recorded[0]["message"].replace("MasterRecordId", "CreatedDate"),
            "fields": ["CreatedDate"],
        }
    ]
    response = client.post("/sobjects/Contact", {"FirstName": "No last name"})
    assert response.status_code == 400
    error = response.json()[0]
    assert error["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert error["fields"] == ["LastName"]
    response = client.session.post(
        client.base + "/sobjects/Account",
        data=b"{not json",
        timeout=10,
        headers={"Content-Type": "application/json"},
    )
    assert (response.status_code, response.json()[0]["errorCode"]) == (400, "JSON_PARSER_ERROR")
    assert client.post("/sobjects/Nope__c", {"Name": "x"}).status_code == 404
    missing = client.get("/sobjects/Account/001000000000000AAA")
    assert missing.status_code == 404
    assert missing.json() == _fixture(fixtures_dir, "rest", "error_not_found.json")
    malformed = client.get("/sobjects/Account/notanid")
    assert malformed.json() == [
        {
            "message": "Provided external ID field does not exist or is not accessible: notanid",
            "errorCode": "NOT_FOUND",
        }
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"Name": "\xff"}', "Invalid UTF-8 byte 0xff at offset 10"),
        (b'{"NumberOfEmployees": ' + b"9" * 5000 + b"}", "Number with more than 4300 digits"),
    ],
)
def test_bodies_json_cannot_read_are_parser_errors(client, body, message):
    """Bytes that are not UTF-8, or a number too long to read, are the client's error (400
    JSON_PARSER_ERROR), for a single record and for a collection alike; never a server error."""
    for path in ("/sobjects/Account", "/composite/sobjects"):
        response = client.session.post(client.base + path, data=body, timeout=10,
                                       headers={"Content-Type": "application/json"})
        assert (response.status_code, response.json()) == (
            400, [{"errorCode": "JSON_PARSER_ERROR", "message": message}]), path


def test_relationship_by_external_id_and_upsert(client):
    store = client.post("/sobjects/Store__c", {"Name": "Main", "Store_Code__c": "S-1"})
    assert store.status_code == 201, store.text
    by_code = client.get("/sobjects/Store__c/Store_Code__c/S-1")
    assert by_code.status_code == 200
    assert by_code.json()["Id"] == store.json()["id"]

    updated = client.patch("/sobjects/Store__c/Store_Code__c/S-1", {"Name": "Main 2"})
    assert updated.status_code == 200
    assert updated.json() == {
        "id": store.json()["id"],
        "success": True,
        "errors": [],
        "created": False,
    }
    created = client.patch("/sobjects/Store__c/Store_Code__c/S-2", {"Name": "Second"})
    assert created.status_code == 201
    assert created.json()["created"] is True
    rows = client.query("SELECT Name, Store_Code__c FROM Store__c ORDER BY Store_Code__c").json()
    assert [(r["Name"], r["Store_Code__c"]) for r in rows["records"]] == [
        ("Main 2", "S-1"),
        ("Second", "S-2"),
    ]
    refused = client.patch("/sobjects/Store__c/Name/Main", {"Name": "x"})
    assert refused.status_code == 404


# --- query ---------------------------------------------------------------------------------


def _insert_accounts(server, count: int) -> list[str]:
    results = server.state.org.write(
        "Account", "insert", [{"Name": f"Account {i:04d}"} for i in range(count)]
    )
    assert all(r.success for r in results)
    return [r.id for r in results]


def test_query_shape(client, fixtures_dir):
    account = client.post("/sobjects/Account", {"Name": "Parent"}).json()["id"]
    client.post(
        "/sobjects/Contact", {"LastName": "Child", "AccountId": account, "Department": "R&D"}
    )
    client.post("/sobjects/Contact", {"LastName": "Orphan"})
    response = client.query(
        "SELECT LastName, Department, CreatedDate, Account.Name FROM Contact ORDER BY LastName"
    )
    assert response.status_code == 200
    body = response.json()
    recorded = _fixture(fixtures_dir, "rest", "query_contacts.json")
    assert list(body) == list(recorded) == ["totalSize", "done", "records"]
    assert (body["totalSize"], body["done"]) == (2, True)
    child, orphan = body["records"]
    assert list(child) == ["attributes", "LastName", "Department", "CreatedDate", "Account"]
    assert list(child["attributes"]) == list(recorded["records"][0]["attributes"])
    assert child["attributes"]["type"] == "Contact"
    assert re.match(
        r"^/services/data/v62\.0/sobjects/Contact/003\w{15}$", child["attributes"]["url"]
    )
    assert DATETIME_REST.match(child["CreatedDate"])
    assert child["Account"] == {
        "attributes": {
            "type": "Account",
            "url": f"/services/data/v62.0/sobjects/Account/{account}",
        },
        "Name": "Parent",
    }
    assert (child["LastName"], child["Department"]) == ("Child", "R&D")
    assert orphan["Account"] is None


def test_query_paging_is_a_stable_snapshot(client):
    server = client.server
    ids = _insert_accounts(server, 450)
    options = {"Sforce-Query-Options": "batchSize=200"}
    first = client.query("SELECT Id, Name FROM Account", headers=options).json()
    assert (first["totalSize"], first["done"], len(first["records"])) == (450, False, 200)
    assert list(first) == ["totalSize", "done", "nextRecordsUrl", "records"]
    assert re.match(r"^/services/data/v62\.0/query/01g\w{15}-200$", first["nextRecordsUrl"])
    # Writes after the query do not change the pages still to come.
    server.state.org.write("Account", "delete", [{"Id": i} for i in ids[200:260]])
    second = client.session.get(server.url + first["nextRecordsUrl"], headers=options).json()
    assert (second["done"], len(second["records"])) == (False, 200)
    assert second["nextRecordsUrl"].endswith("-400")
    third = client.session.get(server.url + second["nextRecordsUrl"], headers=options).json()
    assert (third["totalSize"], third["done"], len(third["records"])) == (450, True, 50)
    assert "nextRecordsUrl" not in third
    seen = [r["Id"] for page in (first, second, third) for r in page["records"]]
    assert sorted(seen) == sorted(ids)
    # The last page closed the cursor.
    gone = client.session.get(server.url + second["nextRecordsUrl"])
    assert gone.status_code == 400
    assert gone.json() == [
        {"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}
    ]


def test_query_default_page_is_2000(client):
    _insert_accounts(client.server, 2001)
    first = client.query("SELECT Name FROM Account").json()
    assert (len(first["records"]), first["nextRecordsUrl"][-5:]) == (2000, "-2000")
    rest_page = client.session.get(client.server.url + first["nextRecordsUrl"]).json()
    assert [r["Name"] for r in rest_page["records"]] == ["Account 2000"]


def test_query_all_includes_deleted_rows(client):
    ids = _insert_accounts(client.server, 3)
    client.delete(f"/sobjects/Account/{ids[0]}")
    live = client.query("SELECT Id FROM Account").json()
    everything = client.query("SELECT Id, IsDeleted FROM Account", kind="queryAll/").json()
    assert live["totalSize"] == 2
    assert everything["totalSize"] == 3
    assert {r["Id"]: r["IsDeleted"] for r in everything["records"]} == {
        ids[0]: True,
        ids[1]: False,
        ids[2]: False,
    }


def test_query_errors(client, fixtures_dir):
    recorded = _fixture(fixtures_dir, "rest", "error_invalid_type_unknown_object.json")
    response = client.query("SELECT Name,BillingCity,IsDeleted FROM Accout")
    assert response.status_code == 400
    error = response.json()[0]
    assert list(error) == list(recorded[0])
    assert error["errorCode"] == "INVALID_TYPE"
    assert error["message"].endswith(recorded[0]["message"].split("\n")[-1])
    response = client.query("SELECT Id, AccountNumer FROM Account")
    assert response.json()[0]["errorCode"] == "INVALID_FIELD"
    assert "No such column 'AccountNumer'" in response.json()[0]["message"]
    assert response.json()[0]["message"].startswith("\nSELECT Id, AccountNumer FROM Account\n")
    missing = client.get("/query")
    assert missing.status_code == 400
    assert missing.json()[0]["errorCode"] == "MALFORMED_QUERY"


# --- composite/batch -----------------------------------------------------------------------


def test_composite_batch(client, fixtures_dir):
    requests_ = [
        {"method": "GET", "url": "/services/data/v62.0/sobjects/Account/describe"},
        {"method": "GET", "url": "v62.0/sobjects/Nope/describe"},
        {"method": "GET", "url": "/services/data/v62.0/sobjects/Contact/describe"},
    ]
    response = client.post("/composite/batch", {"haltOnError": False, "batchRequests": requests_})
    assert response.status_code == 200
    assert response.headers["Sforce-Limit-Info"] == "api-usage=1/15000"
    body = response.json()
    assert list(body) == ["hasErrors", "results"]
    assert body["hasErrors"] is True
    assert [r["statusCode"] for r in body["results"]] == [200, 404, 200]
    assert list(body["results"][0]) == ["statusCode", "result"]
    assert body["results"][0]["result"] == client.get("/sobjects/Account/describe").json()
    assert body["results"][1]["result"] == _fixture(fixtures_dir, "rest", "error_not_found.json")

    halted = client.post("/composite/batch", {"haltOnError": True, "batchRequests": requests_})
    results = halted.json()["results"]
    assert [r["statusCode"] for r in results] == [200, 404, 412]
    assert results[2]["result"][0]["errorCode"] == "BATCH_PROCESSING_HALTED"

    ok = client.post(
        "/composite/batch",
        {
            "batchRequests": [
                {
                    "method": "POST",
                    "url": "v62.0/sobjects/Account",
                    "richInput": {"Name": "Via batch"},
                },
                {"method": "GET", "url": "v62.0/query?q=SELECT+Name+FROM+Account"},
            ]
        },
    ).json()
    assert ok["hasErrors"] is False
    assert ok["results"][0]["statusCode"] == 201
    assert ok["results"][1]["result"]["records"][0]["Name"] == "Via batch"


def test_composite_batch_limits(client):
    too_many = [{"method": "GET", "url": "v62.0/limits"}] * 26
    response = client.post("/composite/batch", {"batchRequests": too_many})
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "INVALID_BATCH_REQUEST"
    assert client.post("/composite/batch", {"nothing": []}).status_code == 400
    twenty_five = client.post("/composite/batch", {"batchRequests": too_many[:25]})
    assert [r["statusCode"] for r in twenty_five.json()["results"]] == [200] * 25
    unserved = client.post(
        "/composite/batch", {"batchRequests": [{"method": "GET", "url": "v99.0/limits"}]}
    )
    assert unserved.json()["results"][0]["statusCode"] == 404


# --- errors never leak ---------------------------------------------------------------------


def test_unexpected_errors_answer_salesforce_500(client, monkeypatch):
    catalog = client.server.state.org.catalog

    def broken(name):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(catalog, "get", broken)
    response = client.get("/sobjects/Account/describe")
    assert response.status_code == 500
    error = response.json()[0]
    assert error["errorCode"] == "UNKNOWN_EXCEPTION"
    assert error["message"].startswith("An unexpected error occurred.")
    assert "secret" not in response.text and "Traceback" not in response.text


# --- admin ---------------------------------------------------------------------------------


def test_admin_stats_and_reset(client):
    server = client.server
    _insert_accounts(server, 4)
    client.get("/limits")
    stats = requests.get(f"{server.url}/_emulator/stats", timeout=10).json()
    assert stats["url"] == server.url
    assert stats["usage"]["DailyApiRequests"] == {"Max": 15000, "Used": 1}
    assert stats["sessions"]["active"] == 1
    assert stats["records"]["Account"] == 4
    assert stats["jobs"] == {"total": 0, "by_state": {}}
    reset = requests.post(f"{server.url}/_emulator/reset", timeout=10)
    assert reset.json() == {"reset": True}
    stats = requests.get(f"{server.url}/_emulator/stats", timeout=10).json()
    assert stats["usage"]["DailyApiRequests"]["Used"] == 0
    assert "Account" not in stats["records"]
    # The session survives a reset.
    assert client.query("SELECT Id FROM Account").json()["totalSize"] == 0


def test_admin_endpoints_answer_loopback_only(emulator):
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/_emulator/stats",
        "headers": [],
        "client": ("10.1.2.3", 5555),
        "query_string": b"",
    }
    refused = rest._loopback_only(Request(scope))
    assert refused is not None and refused.status_code == 403
    assert rest._loopback_only(Request({**scope, "client": ("127.0.0.1", 1)})) is None
    assert rest._loopback_only(Request({**scope, "client": ("::1", 1)})) is None


def test_demo_emulator_serves_the_seeded_org(demo_emulator):
    from sfbulk.emulator.seeds import demo_counts

    client = Client(demo_emulator)
    counts = demo_counts(20)
    for name in ("Account", "Contact", "Opportunity", "Case"):
        body = client.query(f"SELECT Id FROM {name}").json()
        assert body["totalSize"] == counts[name], name
    contact = client.query("SELECT Account.Name FROM Contact LIMIT 1").json()["records"][0]
    assert contact["Account"]["attributes"]["type"] == "Account"
    assert contact["Account"]["Name"]
