"""A local stand-in for Google's OAuth token endpoint and a VM's metadata server, for Tern's GCS tests.

It models only what Tern's GCS credentials code talks to, and checks what a real endpoint would:

  POST /token/<id>   the JWT bearer grant (RFC 7523): form fields grant_type and assertion; the
                     assertion's RS256 signature is verified with PyJWT against --public-key, and its
                     header (alg, kid, typ) and claims (iss, scope, aud = this URL, exp = iat + 3600)
                     are checked. Answers {"access_token", "expires_in", "token_type"} or, like
                     Google, 400 {"error": "invalid_grant", "error_description": ...}.
  GET /computeMetadata/v1/instance/service-accounts/default/token
                     the metadata server: needs "Metadata-Flavor: Google", answers with it.
  GET /storage/v1/b/<bucket>/o/<name>
                     an object's metadata, only for "Authorization: Bearer <a token this server issued
                     and has not revoked>"; 401 otherwise. (fake-gcs-server checks no token, so this is
                     where the tests see a GCS store really send one.)
  POST /control/<id>/revoke, GET /control/<id>/stats
                     test controls: revoke the tokens issued under <id> so far; counts and the last claims.

<id> keeps the state of concurrent tests apart. Tokens are "fake-token-<id>-<n>".
"""
import argparse
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt

GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SCOPE = "https://www.googleapis.com/auth/devstorage.read_write"

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--public-key", required=True)
parser.add_argument("--issuer", required=True)
parser.add_argument("--key-id", required=True)
parser.add_argument("--expires-in", type=int, default=3600)
args = parser.parse_args()
with open(args.public_key) as f:
    PUBLIC_KEY = f.read()

lock = threading.Lock()
state = {}  # id -> {"token_requests", "rejected", "issued": [...], "revoked": count, "last_claims"}
metadata_requests = [0]


def entry(test_id):
    return state.setdefault(test_id, {"token_requests": 0, "rejected": 0, "issued": [], "revoked": 0, "last_claims": None})


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_):
        pass

    def reply(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        length = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(length) if length else b""

    def do_POST(self):
        path = self.path.split("?")[0]
        parts = path.strip("/").split("/")
        if len(parts) == 2 and parts[0] == "token":
            return self.token(parts[1])
        if len(parts) == 3 and parts[0] == "control" and parts[2] == "revoke":
            self.body()
            with lock:
                record = entry(parts[1])
                record["revoked"] = len(record["issued"])
            return self.reply(200, {})
        self.body()
        self.reply(404, {"error": "not_found"})

    def token(self, test_id):
        raw = self.body()
        with lock:
            entry(test_id)["token_requests"] += 1
        if self.headers.get("Content-Type") != "application/x-www-form-urlencoded":
            return self.refuse(test_id, "invalid_request", "Content-Type must be application/x-www-form-urlencoded")
        form = urllib.parse.parse_qs(raw.decode(), strict_parsing=True)
        if form.get("grant_type") != [GRANT] or len(form.get("assertion", [])) != 1:
            return self.refuse(test_id, "invalid_request", "grant_type or assertion missing")
        assertion = form["assertion"][0]
        audience = f"http://127.0.0.1:{args.port}/token/{test_id}"
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(assertion, PUBLIC_KEY, algorithms=["RS256"], audience=audience,
                                options={"verify_exp": False, "verify_iat": False, "require": ["iss", "aud", "exp", "iat"]})
        except jwt.InvalidSignatureError:
            return self.refuse(test_id, "invalid_grant", "Invalid JWT Signature.")
        except jwt.InvalidTokenError as error:
            return self.refuse(test_id, "invalid_grant", f"Invalid JWT: {type(error).__name__}")
        problems = []
        if header != {"alg": "RS256", "kid": args.key_id, "typ": "JWT"}:
            problems.append(f"header {header}")
        if claims.get("iss") != args.issuer:
            problems.append("iss")
        if claims.get("scope") != SCOPE:
            problems.append("scope")
        if claims["exp"] - claims["iat"] != 3600:
            problems.append("exp is not iat + 3600")
        if problems:
            return self.refuse(test_id, "invalid_grant", "bad " + ", ".join(problems))
        with lock:
            record = entry(test_id)
            token = f"fake-token-{test_id}-{len(record['issued']) + 1}"
            record["issued"].append(token)
            record["last_claims"] = claims
        self.reply(200, {"access_token": token, "expires_in": args.expires_in, "token_type": "Bearer"})

    def refuse(self, test_id, code, description):
        with lock:
            entry(test_id)["rejected"] += 1
        self.reply(400, {"error": code, "error_description": description})

    def do_GET(self):
        path = self.path.split("?")[0]
        parts = path.strip("/").split("/")
        if path == "/computeMetadata/v1/instance/service-accounts/default/token":
            if self.headers.get("Metadata-Flavor") != "Google":
                return self.reply(403, {"error": "missing Metadata-Flavor"})
            with lock:
                metadata_requests[0] += 1
                count = metadata_requests[0]
            return self.reply(200, {"access_token": f"metadata-token-{count}", "expires_in": 3599, "token_type": "Bearer"},
                              [("Metadata-Flavor", "Google")])
        if len(parts) == 3 and parts[0] == "control" and parts[2] == "stats":
            with lock:
                record = dict(entry(parts[1]))
                record["metadata_requests"] = metadata_requests[0]
            return self.reply(200, record)
        if len(parts) == 6 and parts[:2] == ["storage", "v1"] and parts[2] == "b" and parts[4] == "o":
            authorization = self.headers.get("Authorization", "")
            token = authorization[len("Bearer "):] if authorization.startswith("Bearer ") else None
            with lock:
                valid = any(token in record["issued"][record["revoked"]:] for record in state.values())
            if not valid:
                return self.reply(401, {"error": {"code": 401, "message": "Invalid Credentials",
                                                  "errors": [{"reason": "authError", "message": "Invalid Credentials"}]}})
            name = urllib.parse.unquote(parts[5])
            return self.reply(200, {"name": name, "size": "3", "generation": "7", "crc32c": "AAAAAA=="})
        self.reply(404, {"error": "not_found"})


ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()
