"""Measure the store's save path: records per second for 10,000-row batches of typical Contacts.

Run: ``.venv/bin/python bench/store_bench.py [--rows 10000] [--batches 5]``. Prints one line per
operation; the target is 50,000 records/s for inserts.
"""

from __future__ import annotations

import argparse
import time

from sfbulk.emulator.store import Org


def contact_rows(start: int, count: int, account_id: str) -> list[dict[str, str]]:
    """Rows as the Bulk layer hands them over: strings, one dict per CSV line."""
    return [
        {
            "FirstName": f"First{n}",
            "LastName": f"Last{n}",
            "Email": f"person{n}@example.com",
            "Phone": f"+1 415 555 {n % 10000:04d}",
            "Title": "Engineer",
            "AccountId": account_id,
            "MailingStreet": f"{n} Market Street",
            "MailingCity": "San Francisco",
            "MailingState": "CA",
            "MailingPostalCode": "94105",
            "MailingCountry": "USA",
            "Birthdate": "1980-02-29",
            "LeadSource": "Web",
        }
        for n in range(start, start + count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--db", default=None, help="SQLite file (default: in memory)")
    args = parser.parse_args()
    org = Org(args.db)
    (account,) = org.write("Account", "insert", [{"Name": "Bench Account"}])
    assert account.id
    total = 0.0
    ids: list[str] = []
    for batch in range(args.batches):
        rows = contact_rows(batch * args.rows, args.rows, account.id)
        started = time.perf_counter()
        results = org.write("Contact", "insert", rows)
        total += time.perf_counter() - started
        assert all(r.success for r in results), results[0]
        ids += [r.id for r in results if r.id]
    count = args.rows * args.batches
    print(f"insert: {count} rows in {total:.2f}s = {count / total:,.0f} records/s")
    updates = [{"Id": i, "Title": "Manager", "LastName": "Renamed"} for i in ids[: args.rows]]
    started = time.perf_counter()
    org.write("Contact", "update", updates)
    elapsed = time.perf_counter() - started
    print(
        f"update: {len(updates)} rows in {elapsed:.2f}s = {len(updates) / elapsed:,.0f} records/s"
    )
    started = time.perf_counter()
    org.write("Contact", "delete", [{"Id": i} for i in ids[: args.rows]])
    elapsed = time.perf_counter() - started
    print(f"delete: {args.rows} rows in {elapsed:.2f}s = {args.rows / elapsed:,.0f} records/s")


if __name__ == "__main__":
    main()
