"""Drives the monday.com emulator with monday (monday.py), unmodified: create a board, a group and
columns, create an item, find it by column value, and read an unknown field's error. The client
hard-codes https://api.monday.com/v2 and has no session option, so each resource's GraphQL
endpoint attribute is set to the emulator. Prints one JSON object; the Rust test asserts on it."""

import json
import sys

from monday import MondayClient
from monday.exceptions import MondayQueryError
from monday.resources.types import BoardKind, ColumnType

base, token = sys.argv[1:3]
m = MondayClient(token)
for resource in vars(m).values():
    if hasattr(resource, "client"):
        resource.client.endpoint = base + "/v2"
out = {}

board = m.boards.create_board("From monday.py", BoardKind.PUBLIC)["data"]["create_board"]["id"]
group = m.groups.create_group(board, "Renewals")["data"]["create_group"]["id"]
status = m.columns.create_column(board, "Stage", ColumnType.STATUS)["data"]["create_column"]["id"]
notes = m.columns.create_column(board, "Notes", ColumnType.TEXT)["data"]["create_column"]["id"]
out["columns"] = [c["id"] for c in m.boards.fetch_columns_by_board_id(int(board))["data"]["boards"][0]["columns"]]
out["column_ids"] = ["name", status, notes]

m.items.create_item(board, group, "Acme", {notes: "renew in May"})
m.items.create_item(board, group, "Globex", {notes: "churned"})
found = m.items.fetch_items_by_column_value(board, notes, "renew in May")["data"]["items_page_by_column_values"]
out["found"] = [i["name"] for i in found["items"]]
out["found_group"] = found["items"][0]["group"]["title"] if found["items"] else None

try:
    m.custom.execute_custom_query(f"query {{ boards(ids: [{board}]) {{ id pos }} }}")
    out["unknown_field"] = None
except MondayQueryError as e:
    out["unknown_field"] = str(e)

print(json.dumps(out))
