"""Salesforce layer shared by tap-sfbulk and target-sfbulk.

Auth, HTTP, Bulk 1.0/2.0, describe, SOQL and the CSV codec; it knows nothing of Singer.
"""
