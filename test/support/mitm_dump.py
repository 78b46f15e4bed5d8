# A mitmproxy addon (Debian bookworm's mitmproxy 8.1.1 has no HAR export; savehar came in 10.x):
# one JSON line per finished or failed flow, with the fields the comparison test checks against
# tlstap's HAR. Header names and values are the wire bytes as latin-1; bodies are base64, after
# content decoding ("content") and as sent ("raw").
#   mitmdump -s mitm_dump.py --set dump_file=FILE ...
import base64
import json

from mitmproxy import ctx


def b64(data):
    return base64.b64encode(data or b"").decode("ascii")


def fields(headers):
    return [[k.decode("latin-1"), v.decode("latin-1")] for k, v in headers.fields] if headers is not None else []


def message(m):
    if m is None:
        return None
    return {
        "http_version": m.http_version,
        "headers": fields(m.headers),
        "trailers": fields(m.trailers),
        "content": b64(m.get_content(strict=False)),
        "raw": b64(m.raw_content),
    }


class Dump:
    def load(self, loader):
        loader.add_option("dump_file", str, "", "where to write one JSON line per flow")

    def write(self, flow):
        req = flow.request
        line = {
            "method": req.method,
            "url": req.url,
            "request": message(req),
            "status": flow.response.status_code if flow.response else None,
            "reason": flow.response.reason if flow.response else None,
            "response": message(flow.response),
            "error": flow.error.msg if flow.error else None,
        }
        with open(ctx.options.dump_file, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")

    def response(self, flow):
        self.write(flow)

    def error(self, flow):
        self.write(flow)


addons = [Dump()]
