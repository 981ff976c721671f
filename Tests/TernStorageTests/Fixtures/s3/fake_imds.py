"""A fake of the EC2 instance metadata service (IMDSv2 only) for the AWS credential tests.

It models what Tern relies on and nothing more: PUT /latest/api/token (the TTL header is required),
GET /latest/meta-data/iam/security-credentials/ and .../<role> (a valid session token is required;
without one the answer is 401, as with IMDSv2 enforced). Every test uses its own state under
/t/<id>/..., so the base URL a test sets as AWS_EC2_METADATA_SERVICE_ENDPOINT is
http://127.0.0.1:<port>/t/<id>.

Control (not part of IMDS):
  POST /control/<id>/config  {"mode": "ok" | "no-role" | "failing", "expiration": "2030-01-01T00:00:00Z"}
  GET  /control/<id>/stats   {"tokens": n, "credentials": n, "refused": n}
"""
import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROLE = "tern-test-role"
LOCK = threading.Lock()
STATE = {}


def state(test_id):
    with LOCK:
        return STATE.setdefault(test_id, {
            "mode": "ok", "expiration": "2030-01-01T00:00:00Z",
            "tokens": 0, "credentials": 0, "refused": 0, "issued": set(),
        })


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, content_type="text/plain"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def split(self):
        path = self.path.split("?", 1)[0]
        if path.startswith("/t/"):
            _, _, test_id, rest = path.split("/", 3)
            return test_id, "/" + rest
        return "", path

    def do_PUT(self):
        test_id, path = self.split()
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if path != "/latest/api/token":
            return self.reply(404, "not found")
        ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
        if ttl is None or not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
            return self.reply(400, "missing or invalid X-aws-ec2-metadata-token-ttl-seconds")
        s = state(test_id)
        with LOCK:
            s["tokens"] += 1
            token = f"token-{test_id}-{s['tokens']}"
            s["issued"].add(token)
        self.reply(200, token)

    def do_GET(self):
        if self.path.startswith("/control/"):
            test_id = self.path.split("/")[2]
            s = state(test_id)
            with LOCK:
                stats = {k: s[k] for k in ("tokens", "credentials", "refused")}
            return self.reply(200, json.dumps(stats), "application/json")
        test_id, path = self.split()
        s = state(test_id)
        token = self.headers.get("X-aws-ec2-metadata-token")
        with LOCK:
            valid = token in s["issued"]
            if not valid:
                s["refused"] += 1
        if not valid:
            return self.reply(401, "")
        prefix = "/latest/meta-data/iam/security-credentials/"
        if path == prefix:
            if s["mode"] == "no-role":
                return self.reply(404, "")
            return self.reply(200, ROLE)
        if path == prefix + ROLE and s["mode"] != "no-role":
            with LOCK:
                s["credentials"] += 1
                n = s["credentials"]
            if s["mode"] == "failing":
                document = {"Code": "AssumeRoleUnauthorizedAccess", "Message": "cannot assume role"}
            else:
                document = {
                    "Code": "Success", "LastUpdated": "2029-12-31T00:00:00Z", "Type": "AWS-HMAC",
                    "AccessKeyId": f"ASIAFAKE{n}", "SecretAccessKey": f"imds-secret-{test_id}-{n}",
                    "Token": f"imds-session-{test_id}-{n}", "Expiration": s["expiration"],
                }
            return self.reply(200, json.dumps(document), "application/json")
        self.reply(404, "")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b"{}"
        parts = self.path.split("/")
        if len(parts) == 4 and parts[1] == "control" and parts[3] == "config":
            config = json.loads(body or b"{}")
            s = state(parts[2])
            with LOCK:
                for key in ("mode", "expiration"):
                    if key in config:
                        s[key] = config[key]
            return self.reply(200, "{}", "application/json")
        self.reply(404, "")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
