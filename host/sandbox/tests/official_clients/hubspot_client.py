"""Drives the HubSpot emulator with HubSpot's official Python client (hubspot-api-client),
unmodified: OAuth refresh, paged listing, create, search, batch upsert and error handling.
Prints one JSON object with what it observed; the Rust test asserts on it."""

import json
import sys

from hubspot import HubSpot
from hubspot.crm.contacts import (
    ApiException,
    BatchInputSimplePublicObjectBatchInputUpsert,
    Filter,
    FilterGroup,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInputUpsert,
    SimplePublicObjectInputForCreate,
)

base, client_id, client_secret, refresh_token = sys.argv[1:5]
out = {}

oauth = HubSpot(host=base)
tokens = oauth.oauth.tokens_api.create(grant_type="refresh_token", client_id=client_id, client_secret=client_secret, refresh_token=refresh_token)
out["expires_in"] = tokens.expires_in
out["refresh_token_kept"] = tokens.refresh_token == refresh_token

api = HubSpot(access_token=tokens.access_token, host=base)

ids = []
after = None
pages = 0
while True:
    page = api.crm.contacts.basic_api.get_page(limit=7, after=after, properties=["email", "firstname"])
    pages += 1
    ids.extend(c.id for c in page.results)
    if page.paging is None or page.paging.next is None:
        break
    after = page.paging.next.after
out["listed"] = len(ids)
out["distinct"] = len(set(ids))
out["pages"] = pages

created = api.crm.contacts.basic_api.create(simple_public_object_input_for_create=SimplePublicObjectInputForCreate(properties={"email": "official.client@example.com", "firstname": "Official"}))
out["created_email"] = created.properties["email"]
out["created_object_id"] = created.properties.get("hs_object_id") == created.id
out["created_has_dates"] = bool(created.properties.get("createdate")) and bool(created.properties.get("lastmodifieddate"))

found = api.crm.contacts.search_api.do_search(
    public_object_search_request=PublicObjectSearchRequest(
        filter_groups=[FilterGroup(filters=[Filter(property_name="email", operator="EQ", value="official.client@example.com")])], properties=["email"], limit=10
    )
)
out["search_total"] = found.total
out["search_id_matches"] = found.results[0].id == created.id if found.results else False

upsert = api.crm.contacts.batch_api.upsert(
    batch_input_simple_public_object_batch_input_upsert=BatchInputSimplePublicObjectBatchInputUpsert(
        inputs=[
            SimplePublicObjectBatchInputUpsert(id="official.client@example.com", id_property="email", properties={"firstname": "Renamed"}),
            SimplePublicObjectBatchInputUpsert(id="second.official@example.com", id_property="email", properties={"firstname": "Second"}),
        ]
    )
)
out["upsert_new_flags"] = sorted(bool(r.new) for r in upsert.results)
out["upsert_object_ids"] = all(r.properties.get("hs_object_id") == r.id for r in upsert.results)

properties = api.crm.properties.core_api.get_all(object_type="contacts")
out["property_types"] = {p.name: p.type for p in properties.results if p.name in ("email", "createdate", "lifecyclestage")}
out["custom_schemas"] = len(api.crm.schemas.core_api.get_all().results)

try:
    api.crm.contacts.basic_api.get_by_id("123")
    out["not_found_status"] = None
except ApiException as e:
    out["not_found_status"] = e.status
    out["not_found_category"] = json.loads(e.body)["category"]

print(json.dumps(out))
