#!/usr/bin/env python3
"""Send one CloudEvent over HTTP with the CloudEvents SDK, as a department system that already
emits CloudEvents would.

usage: send_cloudevent.py URL API_KEY MODE TYPE ID DATA_JSON [EXTENSIONS_JSON]

MODE is `binary` (ce-* headers, the record as the body) or `structured`
(application/cloudevents+json). Prints one JSON object: the HTTP status, the response headers
and the response body as parsed JSON.
"""
import json
import sys
import urllib.error
import urllib.parse
import urllib.request

from cloudevents.v1.conversion import to_binary, to_structured
from cloudevents.v1.http import CloudEvent


def main():
    if len(sys.argv) not in (7, 8):
        sys.exit(__doc__)
    url, key, mode, kind, event_id, data = sys.argv[1:7]
    extensions = json.loads(sys.argv[7]) if len(sys.argv) == 8 else {}
    attributes = {
        "type": kind,
        "id": event_id,
        "source": "urn:district:q1:one-stop",
        "subject": json.loads(data).get("MaHoSo", ""),
        "datacontenttype": "application/json",
        **extensions,
    }
    event = CloudEvent(attributes, json.loads(data))
    headers, body = (to_binary if mode == "binary" else to_structured)(event)
    request = urllib.request.Request(url, data=body, method="POST")
    for name, value in headers.items():
        # The HTTP binding percent-encodes what is not printable ASCII (the SDK leaves it to us).
        if name.lower().startswith("ce-"):
            value = urllib.parse.quote(value, safe=" !#$&'()*+,-./:;<=>?@[]^_`{|}~")
        request.add_header(name, value)
    request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, answer, got = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as e:
        status, answer, got = e.code, e.read(), dict(e.headers)
    print(json.dumps({
        "status": status,
        "headers": {k.lower(): v for k, v in got.items()},
        "body": json.loads(answer) if answer else None,
        "sent": {k.lower(): v for k, v in headers.items()},
    }))


if __name__ == "__main__":
    main()
