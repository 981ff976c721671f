#!/usr/bin/env python3
"""A small in-memory fake of the Azure Blob service, for Tern's wire tests (no Azure emulator can run here).

Python standard library only. One storage account, path-style URLs as the emulator uses them:
http://127.0.0.1:PORT/ACCOUNT/CONTAINER/BLOB.

What it checks, written from the REST documentation independently of Tern's Swift code and of the
Azure SDK:
  * SharedKey signatures (string to sign of versions 2015-02-21+, canonicalized headers and
    resource, HMAC-SHA256 under the base64-decoded key) -> 403 AuthenticationFailed otherwise;
  * service SAS tokens for a blob (sr=b) or a container (sr=c), version 2020-12-06+ string to
    sign, expiry, start and permissions; a synchronous copy's source must carry one;
  * x-ms-date within 15 minutes of the clock, x-ms-version present;
  * x-ms-content-crc64 and Content-MD5 of request bodies -> 400 Crc64Mismatch / Md5Mismatch;
  * header names are sorted with hyphens passed over first, then as bytes: the service's
    culture-aware order for names of lowercase letters, digits and hyphens (Tern's and the SDK's
    full rule also orders symbols such as '_'; no request here has one);
  * If-None-Match: * (409 BlobAlreadyExists), If-Match (412 ConditionNotMet), x-ms-source-if-match.

Operations: Create Container, Put Blob, Put Block, Put Block List, Get Block List, Get Blob
(x-ms-range / Range), Get Blob Properties, Delete Blob, List Blobs (prefix, marker, maxresults),
Copy Blob (asynchronous) and Copy Blob From URL (x-ms-requires-sync).

What it does not model: leases, snapshots, versions, soft delete, access tiers, page and append
blobs, delimiters in listings, account SAS, user-delegation SAS, OAuth, CORS, encryption scopes,
blob tags, real throttling or timeouts, block expiry after seven days (a control call drops blocks
instead), and the exact wording of the service's error XML.

Test controls (no authorization, under /_fake/, scoped by container so tests can run in parallel):
  GET  /_fake/log?container=C             operations that passed authorization, in order (JSON)
  POST /_fake/replace?container=C&blob=B  body becomes the blob, as another writer's Put Blob would
  POST /_fake/fault                       JSON {container, op, count, and one of: status (+ code): answer
                                          that error; drop: do the work, lose the answer; corrupt: flip
                                          a body bit; cut (Get Blob): send half the body and close,
                                          with replace: then replace the blob}
  POST /_fake/pending-copy                JSON {container, polls}: the next async copy stays pending
                                          for that many property reads
  POST /_fake/expire-blocks?container=C&blob=B   drops the blob's uncommitted blocks
"""
import argparse
import base64
import calendar
import hashlib
import hmac
import json
import sys
import threading
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ElementTree
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

VERSION = "2021-08-06"
STANDARD_HEADERS = ["content-encoding", "content-language", "content-length", "content-md5", "content-type", "date",
                    "if-modified-since", "if-match", "if-none-match", "if-unmodified-since", "range"]
SAS_FIELDS_AFTER_RESOURCE = ["si", "sip", "spr", "sv", "sr", "snapshot", "ses", "rscc", "rscd", "rsce", "rscl", "rsct"]


def _crc64_table():
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x9A6C9329AC4BC9B5 if crc & 1 else crc >> 1
        table.append(crc)
    return table


CRC64_TABLE = _crc64_table()


def crc64(data):
    """Azure's CRC-64 (reflected 0x9A6C9329AC4BC9B5, inverted in and out)."""
    crc = 0xFFFFFFFFFFFFFFFF
    table = CRC64_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFFFFFFFFFF


class ServiceError(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class Blob:
    def __init__(self, data, content_type, metadata, committed=None):
        self.data = data
        self.content_type = content_type or "application/octet-stream"
        self.metadata = metadata
        self.committed = committed or []  # [(block id, size)] for blobs made by Put Block List
        self.etag = State.next_etag()
        self.modified = formatdate(usegmt=True)
        self.copy = None  # {"id", "status", "source", "polls"}


class State:
    lock = threading.Lock()
    counter = 0x8DBE5F000000000
    containers = {}  # name -> {"blobs": {name: Blob}, "blocks": {name: {id: bytes}}}
    log = {}  # container -> [entry]
    faults = []
    pending_copies = {}  # container -> polls

    @classmethod
    def next_etag(cls):
        cls.counter += 1
        return f'"0x{cls.counter:X}"'


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeBlobService/1.0"
    account = ""
    key = b""

    def log_message(self, format, *args):
        pass

    # MARK: Plumbing

    def do_GET(self):
        self.handle_any()

    def do_HEAD(self):
        self.handle_any()

    def do_PUT(self):
        self.handle_any()

    def do_DELETE(self):
        self.handle_any()

    def do_POST(self):
        self.handle_any()

    def handle_any(self):
        self.suppress = False
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        self.raw_path, _, self.raw_query = self.path.partition("?")
        self.query = {}
        for name, value in urllib.parse.parse_qsl(self.raw_query, keep_blank_values=True):
            self.query.setdefault(name, []).append(value)
        try:
            if self.raw_path.startswith("/_fake/"):
                return self.control()
            self.route()
        except ServiceError as error:
            self.error(error.status, error.code, error.message)

    def q(self, name):
        values = self.query.get(name)
        return values[0] if values else None

    def answer(self, status, headers=None, body=b""):
        if self.suppress:
            return
        self.send_response(status)
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        self.send_header("x-ms-version", VERSION)
        self.send_header("Date", formatdate(usegmt=True))
        client_id = self.headers.get("x-ms-client-request-id")
        if client_id:
            self.send_header("x-ms-client-request-id", client_id)
        headers = dict(headers or {})
        if "Content-Length" not in headers:
            headers["Content-Length"] = str(len(body))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def error(self, status, code, message):
        text = (f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code><Message>{escape(message)}\n'
                f'RequestId:{uuid.uuid4()}\nTime:{time.strftime("%Y-%m-%dT%H:%M:%S.0000000Z", time.gmtime())}</Message></Error>')
        body = b"" if self.command == "HEAD" else text.encode()
        self.answer(status, {"Content-Type": "application/xml", "x-ms-error-code": code,
                             "Content-Length": str(len(body))}, body)

    # MARK: Authorization

    def string_to_sign(self):
        lines = [self.command]
        for name in STANDARD_HEADERS:
            value = self.headers.get(name, "")
            if name == "content-length" and value == "0":
                value = ""
            lines.append(value)
        text = "\n".join(lines) + "\n"
        names = {}
        for name, value in self.headers.items():
            lowered = name.lower()
            if lowered.startswith("x-ms-"):
                names.setdefault(lowered, []).append(value.strip())
        # The service orders names as a culture-aware sort: hyphens ignored first, then bytes.
        for name in sorted(names, key=lambda n: (n.replace("-", ""), n)):
            text += f"{name}:{','.join(names[name])}\n"
        text += f"/{self.account}{self.raw_path}"
        for name in sorted({n.lower() for n in self.query}):
            values = sorted(v for n, vs in self.query.items() if n.lower() == name for v in vs)
            text += f"\n{name}:{','.join(values)}"
        return text

    def sign(self, text):
        return base64.b64encode(hmac.new(self.key, text.encode("utf-8"), hashlib.sha256).digest()).decode()

    def check_date(self):
        if not self.headers.get("x-ms-version"):
            raise ServiceError(400, "MissingRequiredHeader", "An HTTP header that's mandatory for this request is not specified: x-ms-version.")
        date = self.headers.get("x-ms-date") or self.headers.get("Date")
        try:
            when = parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            raise ServiceError(403, "AuthenticationFailed", "Server failed to authenticate the request. The x-ms-date header is missing or malformed.")
        if abs(when - time.time()) > 15 * 60:
            raise ServiceError(403, "AuthenticationFailed", "Server failed to authenticate the request. Request date header too old or too new.")

    def authorize(self, container, blob, permission):
        """Returns "key" or "sas"; raises 403 unless the request is signed with the account key or carries a
        SAS valid for the resource with `permission`."""
        if self.q("sig") is not None:
            self.check_sas(self.query, container, blob, permission)
            return "sas"
        self.check_date()
        authorization = self.headers.get("Authorization", "")
        if not authorization.startswith("SharedKey "):
            raise ServiceError(403, "NoAuthenticationInformation", "Server failed to authenticate the request. Please refer to the information in the www-authenticate header.")
        account, _, signature = authorization[len("SharedKey "):].partition(":")
        expected = self.sign(self.string_to_sign())
        if account != self.account or not hmac.compare_digest(signature, expected):
            raise ServiceError(403, "AuthenticationFailed", "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.")
        return "key"

    def check_sas(self, query, container, blob, permission):
        def one(name):
            values = query.get(name)
            return values[0] if values else ""

        resource = one("sr")
        if resource == "b":
            canonical = f"/blob/{self.account}/{container}/{blob}"
        elif resource == "c":
            canonical = f"/blob/{self.account}/{container}"
        else:
            raise ServiceError(403, "AuthenticationFailed", "Server failed to authenticate the request. This fake checks service SAS for blobs and containers only.")
        if one("sv") < "2020-12-06":
            raise ServiceError(403, "AuthenticationFailed", "Server failed to authenticate the request. This fake checks SAS versions 2020-12-06 and later.")
        fields = [one("sp"), one("st"), one("se"), canonical] + [one(name) for name in SAS_FIELDS_AFTER_RESOURCE]
        if not hmac.compare_digest(one("sig"), self.sign("\n".join(fields))):
            raise ServiceError(403, "AuthenticationFailed", "Server failed to authenticate the request. Signature did not match.")
        now = time.time()

        def parse(text):
            return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))

        if not one("se") or parse(one("se")) < now:
            raise ServiceError(403, "AuthenticationFailed", "Server failed to authenticate the request. Signed expiry time has to be after signed start time / the SAS has expired.")
        if one("st") and parse(one("st")) > now + 15 * 60:
            raise ServiceError(403, "AuthenticationFailed", "Server failed to authenticate the request. The SAS is not valid yet.")
        if one("spr") == "https":
            raise ServiceError(403, "AuthorizationProtocolMismatch", "This request is not authorized to perform this operation using this protocol.")
        if not any(letter in one("sp") for letter in permission):
            raise ServiceError(403, "AuthorizationPermissionMismatch", "This request is not authorized to perform this operation using this permission.")

    # MARK: Routing

    def route(self):
        parts = self.raw_path.split("/", 3)
        if len(parts) < 3 or parts[1] != self.account or not parts[2]:
            raise ServiceError(400, "InvalidUri", "The requested URI does not represent any resource on the server.")
        container = urllib.parse.unquote(parts[2])
        blob = urllib.parse.unquote(parts[3]) if len(parts) > 3 and parts[3] else None
        comp = self.q("comp")
        if blob is None:
            if self.command == "PUT" and self.q("restype") == "container" and comp is None:
                return self.create_container(container)
            if self.command == "GET" and self.q("restype") == "container" and comp == "list":
                return self.list_blobs(container)
            raise ServiceError(400, "UnsupportedHttpVerb", "The fake does not support this container operation.")
        if self.command == "PUT" and comp is None and self.headers.get("x-ms-copy-source"):
            return self.copy_blob(container, blob)
        handlers = {
            ("PUT", None): (self.put_blob, "Put Blob", "cw"),
            ("PUT", "block"): (self.put_block, "Put Block", "cw"),
            ("PUT", "blocklist"): (self.put_block_list, "Put Block List", "cw"),
            ("GET", "blocklist"): (self.get_block_list, "Get Block List", "r"),
            ("GET", None): (self.get_blob, "Get Blob", "r"),
            ("HEAD", None): (self.get_properties, "Get Blob Properties", "r"),
            ("DELETE", None): (self.delete_blob, "Delete Blob", "d"),
        }
        entry = handlers.get((self.command, comp))
        if entry is None:
            raise ServiceError(400, "UnsupportedQueryParameter", "The fake does not support this blob operation.")
        handler, operation, permission = entry
        self.authorize(container, blob, permission)
        with State.lock:
            if container not in State.containers:
                raise ServiceError(404, "ContainerNotFound", "The specified container does not exist.")
            self.record(container, operation, blob)
            fault = self.take_fault(container, operation)
            if fault and fault.get("status"):
                raise ServiceError(fault["status"], fault.get("code", "InternalError"), "Injected fault.")
            if fault and fault.get("corrupt") and self.body:
                # Bytes damaged on the way: the body no longer matches the checksum sent with it.
                self.body = bytes([self.body[0] ^ 0x01]) + self.body[1:]
            if fault and fault.get("cut") and operation == "Get Blob":
                return self.cut_download(container, blob, fault)
            # A "drop" fault does the work but loses the answer, as when a connection breaks.
            self.suppress = bool(fault and fault.get("drop"))
            handler(State.containers[container], container, blob)
            if self.suppress:
                self.close_connection = True
                raise DroppedAnswer()

    def record(self, container, operation, blob):
        entry = {"op": operation, "blob": blob}
        if self.q("blockid") is not None:
            entry["blockid"] = self.q("blockid")
        State.log.setdefault(container, []).append(entry)

    def take_fault(self, container, operation):
        for fault in State.faults:
            if fault["container"] == container and fault["op"] == operation and fault["count"] > 0:
                fault["count"] -= 1
                return fault
        return None

    # MARK: Containers

    def create_container(self, container):
        self.authorize(container, None, "c")
        with State.lock:
            if container in State.containers:
                raise ServiceError(409, "ContainerAlreadyExists", "The specified container already exists.")
            State.containers[container] = {"blobs": {}, "blocks": {}}
            self.record(container, "Create Container", None)
        self.answer(201, {"ETag": State.next_etag(), "Last-Modified": formatdate(usegmt=True)})

    def list_blobs(self, container):
        self.authorize(container, None, "l")
        with State.lock:
            if container not in State.containers:
                raise ServiceError(404, "ContainerNotFound", "The specified container does not exist.")
            self.record(container, "List Blobs", None)
            prefix = self.q("prefix") or ""
            marker = self.q("marker")
            start = ""
            if marker:
                try:
                    start = base64.urlsafe_b64decode(marker.encode()).decode("utf-8").removeprefix("fake!")
                except ValueError:
                    raise ServiceError(400, "OutOfRangeInput", "The marker is not one this service made.")
            try:
                limit = int(self.q("maxresults") or 5000)
            except ValueError:
                raise ServiceError(400, "InvalidQueryParameterValue", "maxresults is not a number.")
            if not 1 <= limit <= 5000:
                raise ServiceError(400, "OutOfRangeQueryParameterValue", "maxresults must be 1 to 5000.")
            blobs = State.containers[container]["blobs"]
            names = sorted(n for n in blobs if n.startswith(prefix) and n >= start)
            page, rest = names[:limit], names[limit:]
            items = []
            for name in page:
                blob = blobs[name]
                if any((ord(c) < 0x20 and c not in "\t\n\r") or c in "\ufffe\uffff" for c in name):
                    name_xml = f'<Name Encoded="true">{urllib.parse.quote(name, safe="")}</Name>'
                else:
                    name_xml = f"<Name>{escape(name)}</Name>"
                items.append(f"<Blob>{name_xml}<Properties><Creation-Time>{blob.modified}</Creation-Time>"
                             f"<Last-Modified>{blob.modified}</Last-Modified><Etag>{blob.etag.strip(chr(34))}</Etag>"
                             f"<Content-Length>{len(blob.data)}</Content-Length><Content-Type>{escape(blob.content_type)}</Content-Type>"
                             f"<BlobType>BlockBlob</BlobType><LeaseStatus>unlocked</LeaseStatus></Properties></Blob>")
            next_marker = base64.urlsafe_b64encode(("fake!" + rest[0]).encode()).decode() if rest else ""
        text = (f'<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="http://{self.headers.get("Host")}/{self.account}/" '
                f'ContainerName="{escape(container)}"><Prefix>{escape(prefix)}</Prefix><Marker>{escape(marker or "")}</Marker>'
                f'<MaxResults>{limit}</MaxResults><Blobs>{"".join(items)}</Blobs>'
                + (f"<NextMarker>{next_marker}</NextMarker>" if next_marker else "<NextMarker />") + "</EnumerationResults>")
        self.answer(200, {"Content-Type": "application/xml"}, text.encode())

    # MARK: Writes

    def check_body(self):
        headers = {}
        md5 = self.headers.get("Content-MD5")
        crc = self.headers.get("x-ms-content-crc64")
        if md5 and crc:
            raise ServiceError(400, "InvalidHeaderValue", "Content-MD5 and x-ms-content-crc64 cannot both be given.")
        if md5 and base64.b64encode(hashlib.md5(self.body).digest()).decode() != md5:
            raise ServiceError(400, "Md5Mismatch", "The MD5 value specified in the request did not match with the MD5 value calculated by the server.")
        if crc is not None:
            computed = base64.b64encode(crc64(self.body).to_bytes(8, "little")).decode()
            if computed != crc:
                raise ServiceError(400, "Crc64Mismatch", "The CRC64 value specified in the request did not match with the CRC64 value calculated by the server.")
            headers["x-ms-content-crc64"] = computed
        return headers

    def check_conditions(self, existing):
        none_match = self.headers.get("If-None-Match")
        if none_match == "*" and existing is not None:
            raise ServiceError(409, "BlobAlreadyExists", "The specified blob already exists.")
        if none_match and none_match != "*" and existing is not None and existing.etag == none_match:
            raise ServiceError(412, "ConditionNotMet", "The condition specified using HTTP conditional header(s) is not met.")
        match = self.headers.get("If-Match")
        if match and (existing is None or (match != "*" and existing.etag != match)):
            if existing is None:
                raise ServiceError(404, "BlobNotFound", "The specified blob does not exist.")
            raise ServiceError(412, "ConditionNotMet", "The condition specified using HTTP conditional header(s) is not met.")

    def metadata(self):
        return {name.lower()[len("x-ms-meta-"):]: value for name, value in self.headers.items()
                if name.lower().startswith("x-ms-meta-")}

    def put_blob(self, state, container, name):
        if self.headers.get("x-ms-blob-type") != "BlockBlob":
            raise ServiceError(400, "InvalidHeaderValue", "x-ms-blob-type must be BlockBlob (the fake has no page or append blobs).")
        checks = self.check_body()
        self.check_conditions(state["blobs"].get(name))
        content_type = self.headers.get("x-ms-blob-content-type") or self.headers.get("Content-Type")
        blob = Blob(self.body, content_type, self.metadata())
        state["blobs"][name] = blob
        state["blocks"].pop(name, None)
        checks.update({"ETag": blob.etag, "Last-Modified": blob.modified, "x-ms-request-server-encrypted": "true",
                       "Content-MD5": base64.b64encode(hashlib.md5(self.body).digest()).decode()})
        self.answer(201, checks)

    def put_block(self, state, container, name):
        block_id = self.q("blockid") or ""
        try:
            raw = base64.b64decode(block_id, validate=True)
        except ValueError:
            raise ServiceError(400, "InvalidQueryParameterValue", "The block id is not valid base64.")
        if not raw or len(raw) > 64:
            raise ServiceError(400, "InvalidQueryParameterValue", "A block id is 1 to 64 bytes before encoding.")
        if not self.body:
            raise ServiceError(400, "InvalidHeaderValue", "A block holds at least one byte.")
        blocks = state["blocks"].setdefault(name, {})
        existing = state["blobs"].get(name)
        lengths = {len(i) for i in blocks} | {len(i) for i, _ in (existing.committed if existing else [])}
        if lengths and lengths != {len(block_id)}:
            raise ServiceError(400, "InvalidBlobOrBlock", "The specified blob or block content is invalid (block ids of one blob must have the same length).")
        checks = self.check_body()
        blocks[block_id] = self.body
        checks["x-ms-request-server-encrypted"] = "true"
        self.answer(201, checks)

    def put_block_list(self, state, container, name):
        try:
            root = ElementTree.fromstring(self.body)
        except ElementTree.ParseError:
            raise ServiceError(400, "InvalidXmlDocument", "XML specified is not syntactically valid.")
        if root.tag != "BlockList":
            raise ServiceError(400, "InvalidXmlDocument", "The root element must be BlockList.")
        existing = state["blobs"].get(name)
        uncommitted = state["blocks"].get(name, {})
        committed = {i: size for i, size in (existing.committed if existing else [])}
        committed_bytes = {}
        if existing:
            offset = 0
            for i, size in existing.committed:
                committed_bytes[i] = existing.data[offset:offset + size]
                offset += size
        data = bytearray()
        listed = []
        for element in root:
            block_id = (element.text or "").strip()
            if element.tag in ("Latest", "Uncommitted") and block_id in uncommitted:
                chunk = uncommitted[block_id]
            elif element.tag in ("Latest", "Committed") and block_id in committed:
                chunk = committed_bytes[block_id]
            else:
                raise ServiceError(400, "InvalidBlockList", "The specified block list is invalid.")
            data += chunk
            listed.append((block_id, len(chunk)))
        self.check_conditions(existing)
        content_type = self.headers.get("x-ms-blob-content-type")
        blob = Blob(bytes(data), content_type, self.metadata(), committed=listed)
        state["blobs"][name] = blob
        state["blocks"].pop(name, None)
        self.answer(201, {"ETag": blob.etag, "Last-Modified": blob.modified, "x-ms-request-server-encrypted": "true"})

    def copy_blob(self, container, name):
        sync = (self.headers.get("x-ms-requires-sync") or "").lower() == "true"
        how = self.authorize(container, name, "cw")
        source = urllib.parse.urlsplit(self.headers["x-ms-copy-source"])
        parts = source.path.split("/", 3)
        if len(parts) < 4 or parts[1] != self.account:
            raise ServiceError(400, "CannotVerifyCopySource", "The fake copies only within its own account.")
        source_container, source_blob = urllib.parse.unquote(parts[2]), urllib.parse.unquote(parts[3])
        source_query = {}
        for key, value in urllib.parse.parse_qsl(source.query, keep_blank_values=True):
            source_query.setdefault(key, []).append(value)
        # Copy Blob From URL needs the source authorized by a SAS on its URL; Copy Blob accepts the
        # destination's SharedKey for a source in the same account.
        if sync or how == "sas":
            if "sig" not in source_query:
                raise ServiceError(403, "CannotVerifyCopySource", "Server failed to authenticate the request (the copy source carries no SAS).")
            try:
                self.check_sas(source_query, source_container, source_blob, "r")
            except ServiceError as error:
                raise ServiceError(403, "CannotVerifyCopySource", error.message)
        with State.lock:
            if container not in State.containers:
                raise ServiceError(404, "ContainerNotFound", "The specified container does not exist.")
            self.record(container, "Copy Blob From URL" if sync else "Copy Blob", name)
            fault = self.take_fault(container, "Copy Blob From URL" if sync else "Copy Blob")
            if fault and fault.get("status"):
                raise ServiceError(fault["status"], fault.get("code", "InternalError"), "Injected fault.")
            found = State.containers.get(source_container, {"blobs": {}})["blobs"].get(source_blob)
            if found is None:
                raise ServiceError(404, "CannotVerifyCopySource" if sync else "BlobNotFound", "The specified blob does not exist.")
            source_match = self.headers.get("x-ms-source-if-match")
            if source_match and source_match != found.etag:
                raise ServiceError(412, "SourceConditionNotMet", "The source condition specified using HTTP conditional header(s) is not met.")
            if sync and len(found.data) > 256 * 1024 * 1024:
                raise ServiceError(409, "CannotVerifyCopySource", "The source request body is too large.")
            state = State.containers[container]
            self.check_conditions(state["blobs"].get(name))
            blob = Blob(found.data, found.content_type, self.metadata() or dict(found.metadata))
            polls = 0 if sync else State.pending_copies.pop(container, 0)
            blob.copy = {"id": str(uuid.uuid4()), "status": "pending" if polls else "success",
                         "source": self.headers["x-ms-copy-source"].split("?")[0], "polls": polls}
            state["blobs"][name] = blob
            state["blocks"].pop(name, None)
        self.answer(202, {"ETag": blob.etag, "Last-Modified": blob.modified, "x-ms-copy-id": blob.copy["id"],
                          "x-ms-copy-status": blob.copy["status"]})

    def delete_blob(self, state, container, name):
        if name not in state["blobs"]:
            raise ServiceError(404, "BlobNotFound", "The specified blob does not exist.")
        del state["blobs"][name]
        state["blocks"].pop(name, None)
        self.answer(202, {"x-ms-delete-type-permanent": "true"})

    # MARK: Reads

    def blob_headers(self, blob):
        headers = {"ETag": blob.etag, "Last-Modified": blob.modified, "Content-Type": blob.content_type,
                   "x-ms-blob-type": "BlockBlob", "Accept-Ranges": "bytes", "x-ms-server-encrypted": "true"}
        for name, value in blob.metadata.items():
            headers[f"x-ms-meta-{name}"] = value
        if blob.copy:
            headers.update({"x-ms-copy-id": blob.copy["id"], "x-ms-copy-status": blob.copy["status"],
                            "x-ms-copy-source": blob.copy["source"]})
        return headers

    def find(self, state, name):
        blob = state["blobs"].get(name)
        if blob is None:
            raise ServiceError(404, "BlobNotFound", "The specified blob does not exist.")
        match = self.headers.get("If-Match")
        if match and match != "*" and match != blob.etag:
            raise ServiceError(412, "ConditionNotMet", "The condition specified using HTTP conditional header(s) is not met.")
        return blob

    def get_properties(self, state, container, name):
        blob = self.find(state, name)
        headers = self.blob_headers(blob)
        headers["Content-Length"] = str(len(blob.data))
        if blob.copy and blob.copy["status"] == "pending":
            blob.copy["polls"] -= 1
            if blob.copy["polls"] <= 0:
                blob.copy["status"] = "success"
        self.answer(200, headers)

    def byte_range(self, size):
        text = self.headers.get("x-ms-range") or self.headers.get("Range")
        if not text:
            return None
        if not text.startswith("bytes="):
            raise ServiceError(400, "InvalidHeaderValue", "The range is not bytes=START-[END].")
        first, _, last = text[len("bytes="):].partition("-")
        try:
            start = int(first)
            end = int(last) if last else size - 1
        except ValueError:
            raise ServiceError(400, "InvalidHeaderValue", "The range is not bytes=START-[END].")
        if start >= size or end < start:
            raise ServiceError(416, "InvalidRange", "The range specified is invalid for the current size of the resource.")
        return start, min(end, size - 1)

    def get_blob(self, state, container, name):
        blob = self.find(state, name)
        headers = self.blob_headers(blob)
        span = self.byte_range(len(blob.data))
        if span is None:
            headers["Content-MD5"] = base64.b64encode(hashlib.md5(blob.data).digest()).decode()
            return self.answer(200, headers, blob.data)
        start, end = span
        headers["Content-Range"] = f"bytes {start}-{end}/{len(blob.data)}"
        self.answer(206, headers, blob.data[start:end + 1])

    def cut_download(self, container, name, fault):
        """Sends the head and half the body, then closes the connection (optionally replacing the blob)."""
        state = State.containers[container]
        blob = self.find(state, name)
        span = self.byte_range(len(blob.data)) or (0, len(blob.data) - 1)
        body = blob.data[span[0]:span[1] + 1]
        headers = self.blob_headers(blob)
        headers["Content-Length"] = str(len(body))
        if span != (0, len(blob.data) - 1):
            headers["Content-Range"] = f"bytes {span[0]}-{span[1]}/{len(blob.data)}"
        self.send_response(206 if "Content-Range" in headers else 200)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body[:len(body) // 2])
        self.wfile.flush()
        self.close_connection = True
        if fault.get("replace"):
            state["blobs"][name] = Blob(b"replaced" + blob.data[8:], blob.content_type, dict(blob.metadata))
        raise DroppedAnswer()

    def get_block_list(self, state, container, name):
        kind = self.q("blocklisttype") or "committed"
        if kind not in ("committed", "uncommitted", "all"):
            raise ServiceError(400, "InvalidQueryParameterValue", "blocklisttype must be committed, uncommitted or all.")
        blob = state["blobs"].get(name)
        blocks = state["blocks"].get(name)
        if blob is None and not blocks:
            raise ServiceError(404, "BlobNotFound", "The specified blob does not exist.")

        def section(tag, entries):
            inner = "".join(f"<Block><Name>{escape(i)}</Name><Size>{size}</Size></Block>" for i, size in entries)
            return f"<{tag}>{inner}</{tag}>" if inner else f"<{tag} />"

        text = '<?xml version="1.0" encoding="utf-8"?><BlockList>'
        if kind in ("committed", "all"):
            text += section("CommittedBlocks", blob.committed if blob else [])
        if kind in ("uncommitted", "all"):
            text += section("UncommittedBlocks", [(i, len(b)) for i, b in (blocks or {}).items()])
        text += "</BlockList>"
        headers = {"Content-Type": "application/xml"}
        if blob:
            headers.update({"ETag": blob.etag, "x-ms-blob-content-length": str(len(blob.data))})
        self.answer(200, headers, text.encode())

    # MARK: Test controls

    def control(self):
        path = self.raw_path[len("/_fake/"):]
        container = self.q("container")
        with State.lock:
            if path == "log" and self.command == "GET":
                body = json.dumps(State.log.get(container, [])).encode()
                return self.answer(200, {"Content-Type": "application/json"}, body)
            if path == "replace" and self.command == "POST":
                state = State.containers[container]
                old = state["blobs"].get(self.q("blob"))
                state["blobs"][self.q("blob")] = Blob(self.body, old.content_type if old else None, {})
                return self.answer(204)
            if path == "fault" and self.command == "POST":
                State.faults.append(json.loads(self.body))
                return self.answer(204)
            if path == "pending-copy" and self.command == "POST":
                spec = json.loads(self.body)
                State.pending_copies[spec["container"]] = spec["polls"]
                return self.answer(204)
            if path == "expire-blocks" and self.command == "POST":
                State.containers[container]["blocks"].pop(self.q("blob"), None)
                return self.answer(204)
        raise ServiceError(404, "ResourceNotFound", "No such control.")


class DroppedAnswer(Exception):
    pass


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (DroppedAnswer, ConnectionError)):
            return
        super().handle_error(request, client_address)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--account", default="devstoreaccount1")
    parser.add_argument("--key", required=True, help="the account key, base64")
    arguments = parser.parse_args()
    Handler.account = arguments.account
    Handler.key = base64.b64decode(arguments.key)
    server = Server(("127.0.0.1", arguments.port), Handler)
    server.serve_forever()


if __name__ == "__main__":
    main()
