"""Drives the Zendesk emulator with zenpy (Zendesk's most used Python client), unmodified: its
requests to https://{subdomain}.zendesk.com reach the emulator through the sandbox's HTTPS proxy
(HTTPS_PROXY and REQUESTS_CA_BUNDLE are set by the test).
Lists users and tickets, creates and updates a ticket, and reads the incremental ticket export.
(zenpy.search is left out: the emulator does not serve the general /api/v2/search endpoint.) Prints one JSON object; the Rust test asserts on it."""

import json
import sys

from zenpy import Zenpy
from zenpy.lib.api_objects import Ticket

subdomain, email, token = sys.argv[1:4]
zenpy = Zenpy(subdomain=subdomain, email=email, token=token)
out = {}

out["users"] = len(list(zenpy.users()))
out["tickets"] = len(list(zenpy.tickets()))

created = zenpy.tickets.create(Ticket(subject="From zenpy", description="Opened by zenpy", priority="high"))
ticket = created.ticket
out["created_subject"] = ticket.subject
ticket.status = "solved"
zenpy.tickets.update(ticket)
out["updated_status"] = zenpy.tickets(id=ticket.id).status

exported = list(zenpy.tickets.incremental(start_time=0))
out["incremental"] = len(exported)
out["incremental_distinct"] = len({t.id for t in exported})
out["incremental_statuses"] = sorted({t.status for t in exported})

print(json.dumps(out))
