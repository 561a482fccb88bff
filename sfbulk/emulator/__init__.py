"""A local Salesforce org: OAuth, REST describe and Bulk API 1.0/2.0 over a SQLite store."""
