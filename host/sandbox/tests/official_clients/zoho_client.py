"""Drives the Zoho CRM emulator with Zoho's official Python SDK (zohocrmsdk7-0 or zohocrmsdk8-0,
which share the `zohocrmsdk` package), unmodified except for pointing its DataCenter.Environment
at the emulator: token refresh, field metadata, paged listing with page tokens, create with a
per-record failure, upsert, the organization and a module's record count.
Prints one JSON object; the Rust test asserts on it."""

import json
import os
import sys
import tempfile

from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.api.authenticator.store import FileStore
from zohocrmsdk.src.com.zoho.crm.api import HeaderMap, ParameterMap
from zohocrmsdk.src.com.zoho.crm.api.dc import DataCenter
from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer
from zohocrmsdk.src.com.zoho.crm.api.record import BodyWrapper, GetRecordsParam, Record, RecordOperations

base, client_id, client_secret, refresh_token = sys.argv[1:5]
work = tempfile.mkdtemp()
Initializer.initialize(
    environment=DataCenter.Environment(base, base + "/oauth/v2/token", base),
    token=OAuthToken(client_id=client_id, client_secret=client_secret, refresh_token=refresh_token),
    store=FileStore(os.path.join(work, "tokens.txt")),
    resource_path=work,
)
out = {}
ops = RecordOperations("Leads")

names = []
token = None
pages = 0
while True:
    params = ParameterMap()
    params.add(GetRecordsParam.fields, "Last_Name,Email")
    params.add(GetRecordsParam.per_page, 4)
    if token:
        params.add(GetRecordsParam.page_token, token)
    resp = ops.get_records(params, HeaderMap())
    wrapper = resp.get_object()
    pages += 1
    names.extend(r.get_key_value("Last_Name") for r in wrapper.get_data())
    info = wrapper.get_info()
    if not info.get_more_records():
        break
    token = info.get_next_page_token()
out["listed"] = len(names)
out["pages"] = pages

good = Record()
good.add_key_value("Last_Name", "From the SDK")
good.add_key_value("Email", "sdk.lead@example.com")
bad = Record()
bad.add_key_value("First_Name", "No last name")
body = BodyWrapper()
body.set_data([good, bad])
resp = ops.create_records(body, HeaderMap())
out["create_status"] = resp.get_status_code()
results = resp.get_object().get_data()
out["create_codes"] = [r.get_code().get_value() for r in results]

again = Record()
again.add_key_value("Last_Name", "Upserted by the SDK")
again.add_key_value("Email", "sdk.lead@example.com")
body = BodyWrapper()
body.set_data([again])
body.set_duplicate_check_fields(["Email"])
resp = ops.upsert_records(body, HeaderMap())
first = resp.get_object().get_data()[0]
out["upsert_code"] = first.get_code().get_value()
out["upsert_action"] = first.get_action().get_value()
out["upsert_duplicate_field"] = first.get_duplicate_field()

from zohocrmsdk.src.com.zoho.crm.api.org import OrgOperations

org = OrgOperations().get_organization().get_object().get_org()[0]
out["org_zgid"] = org.get_zgid()

count = ops.record_count(ParameterMap())
out["count_status"] = count.get_status_code()
out["count"] = count.get_object().get_count()

print(json.dumps(out))
