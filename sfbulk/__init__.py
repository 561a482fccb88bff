"""Salesforce layer shared by tap-sfbulk and target-sfbulk: auth, HTTP, Bulk 1.0/2.0, describe, SOQL, CSV."""
