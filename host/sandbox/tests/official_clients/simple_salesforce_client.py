"""Drives the Salesforce emulator with simple-salesforce, unmodified: JWT bearer login (it sends
`exp` as a string), SOQL with query_all, create, get, update and describe. It hard-codes
https://login.salesforce.com and https://{instance}; both reach the emulator through the
sandbox's HTTPS proxy (HTTPS_PROXY and REQUESTS_CA_BUNDLE are set by the test). Prints one JSON
object; the Rust test asserts on it."""

import json
import sys

from simple_salesforce import Salesforce

username, consumer_key, private_key = sys.argv[1:4]
sf = Salesforce(username=username, consumer_key=consumer_key, privatekey=private_key)
out = {"instance": sf.sf_instance}

out["accounts"] = sf.query_all("SELECT Id, Name FROM Account")["totalSize"]
created = sf.Account.create({"Name": "From simple-salesforce"})
out["created"] = created["success"]
sf.Account.update(created["id"], {"Name": "Renamed by simple-salesforce"})
out["read_back"] = sf.Account.get(created["id"])["Name"]
out["describe_has_name"] = any(f["name"] == "Name" for f in sf.Account.describe()["fields"])

print(json.dumps(out))
