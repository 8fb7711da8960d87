"""A requests session that sends a vendor's https hosts to an emulator's plain-http base URL.

Clients that hard-code https://{host} but accept a requests session (zenpy, simple-salesforce)
get one of these; nothing in the client changes. The weft sandbox's HTTPS proxy would make it
unnecessary."""

import requests
from requests.adapters import HTTPAdapter


class _ToEmulator(HTTPAdapter):
    def __init__(self, origin, base):
        super().__init__()
        self.origin = origin
        self.base = base.rstrip("/")

    def send(self, request, **kwargs):
        # The client sees its own URL on the request and response afterwards: zenpy, for one,
        # picks how to read a response by the URL it asked for.
        original = request.url
        request.url = self.base + original[len(self.origin):]
        try:
            response = super().send(request, **kwargs)
        finally:
            request.url = original
        response.url = original
        return response


def session_to(base, *hosts):
    """A session whose requests to https://<host> for each host go to `base` instead."""
    session = requests.Session()
    for host in hosts:
        origin = f"https://{host}"
        session.mount(origin, _ToEmulator(origin, base))
    return session
