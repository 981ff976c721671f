#!/usr/bin/env python3
"""Makes the Azure Blob test vectors in Tests/TernStorageTests/Fixtures/azure/vectors.json.

The official azure-storage-blob SDK, an implementation independent of Tern's, builds and signs each
request; a transport that captures instead of sending records the exact method, URL, headers, body,
SharedKey string-to-sign and Authorization header. The clock (x-ms-date) and the client request ids
are fixed, so the output is the same on every run. The requests are the ones Tern's Azure store
sends, made with the options Tern uses (CRC64 per request, If-None-Match: * for create-only, the
`terncrc32c` and `ternwrite` metadata, pinned ETags), and each carries a `tern` entry that tells the Swift tests
which of Tern's request builders must produce the same request.

Also recorded: service SAS tokens for fixed inputs (sv=2021-08-06, the version Tern speaks) and the
SDK's CRC64 (azure-storage-extensions) of fixed byte strings.

    python3 -m venv /tmp/azvenv && /tmp/azvenv/bin/pip install azure-storage-blob azure-storage-extensions
    /tmp/azvenv/bin/python scripts/azure-vectors.py           # rewrite the vectors
    /tmp/azvenv/bin/python scripts/azure-vectors.py --check   # recompute and compare, write nothing
    /tmp/azvenv/bin/python scripts/azure-vectors.py --check-fake  # run the SDK against the tests' fake service

The last form starts Tests/TernStorageTests/Fixtures/azure/fake_blob_service.py and drives it with the
SDK (real requests this time), to show that the fake's independent signature, SAS and CRC64 checks
accept what the official client sends and refuse a wrong key.

The account is the storage emulator's published development account (devstoreaccount1 and its
well-known key), which guards nothing.
"""
import base64
import json
import os
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import azure.storage.blob._shared.policies as storage_policies
from azure.core import MatchConditions
from azure.core.pipeline.transport import HttpTransport
from azure.core.exceptions import ClientAuthenticationError, ResourceExistsError
from azure.storage.blob import BlobServiceClient, ContentSettings, generate_blob_sas
from azure.storage.blob._shared import authentication
from azure.storage.blob._shared.authentication import _storage_header_sort
from azure.storage.blob._shared_access_signature import BlobSharedAccessSignature
from azure.storage.extensions import checksums

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTPUT = os.path.join(ROOT, "Tests", "TernStorageTests", "Fixtures", "azure", "vectors.json")
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
VERSION = "2021-08-06"
CLOCK = 1700000000  # x-ms-date: Tue, 14 Nov 2023 22:13:20 GMT
ENDPOINTS = {
    "host": f"https://{ACCOUNT}.blob.core.windows.net",
    "path": f"http://127.0.0.1:10000/{ACCOUNT}",  # the emulator's path-style form
}

# A fixed clock for x-ms-date.
storage_policies.time = lambda: CLOCK

# The string each request was signed over, recorded beside it.
_strings_to_sign = []
_sign = authentication.SharedKeyCredentialPolicy._add_authorization_header


def _recording_sign(self, request, string_to_sign):
    _strings_to_sign.append(string_to_sign)
    return _sign(self, request, string_to_sign)


authentication.SharedKeyCredentialPolicy._add_authorization_header = _recording_sign


class Captured(Exception):
    """Raised by the transport once it has the request: nothing is ever sent."""


class CaptureTransport(HttpTransport):
    def __init__(self):
        self.requests = []

    def __enter__(self):
        return self

    def __exit__(self, *args):
        pass

    def open(self):
        pass

    def close(self):
        pass

    def send(self, request, **kwargs):
        self.requests.append(request)
        raise Captured()


def crc64_header(data):
    return base64.b64encode(checksums.crc64.compute(data, 0).to_bytes(8, "little")).decode()


def crc32c_hex(value):
    return f"{value:08x}"


class Recorder:
    def __init__(self):
        self.vectors = []
        self.counter = 0

    def record(self, name, call, tern):
        self.counter += 1
        request_id = f"00000000-0000-4000-8000-{self.counter:012d}"
        transport = CaptureTransport()
        try:
            call(transport, request_id)
        except Captured:
            pass
        if len(transport.requests) != 1:
            raise SystemExit(f"{name}: expected one captured request, got {len(transport.requests)}")
        request = transport.requests[0]
        headers = [[k, v] for k, v in request.headers.items() if k not in ("Authorization", "User-Agent", "Accept")]
        body = request.body
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.vectors.append({
            "name": name,
            "method": request.method,
            "url": request.url,
            "headers": headers,
            "body": base64.b64encode(body or b"").decode(),
            "stringToSign": _strings_to_sign[-1],
            "authorization": request.headers["Authorization"],
            "tern": dict(tern, requestID=request_id),
        })


def service(transport, style):
    return BlobServiceClient(ENDPOINTS[style], credential={"account_name": ACCOUNT, "account_key": KEY},
                             api_version=VERSION, transport=transport)


def requests():
    recorder = Recorder()
    hello = b"hello, tern"
    block = bytes(range(256)) * 4
    block_ids = ["tern-0123456789abcdef-000001", "tern-0123456789abcdef-000002"]
    etag = '"0x8DBE5F0C1D2E3F4"'
    write_id = "tern-0123456789abcdef"
    names = {"plain": "run-1/step-10/model.bin", "odd": "run 1/ü+x%.bin"}
    for style in ("host", "path"):
        for label, name in names.items():
            def blob(transport, name=name, style=style):
                return service(transport, style).get_blob_client("ckpts", name)

            prefix = f"{style}/{label}"
            recorder.record(f"{prefix}/put-blob-create-only", lambda t, r, blob=blob: blob(t).upload_blob(
                hello, overwrite=False, metadata={"terncrc32c": crc32c_hex(0x1234ABCD), "ternwrite": write_id}, validate_content="crc64",
                client_request_id=r),
                {"op": "putBlob", "endpoint": ENDPOINTS[style], "name": name, "body": base64.b64encode(hello).decode(),
                 "createOnly": True, "crc32c": crc32c_hex(0x1234ABCD), "crc64": crc64_header(hello), "writeID": write_id})
            recorder.record(f"{prefix}/get-properties", lambda t, r, blob=blob: blob(t).get_blob_properties(client_request_id=r),
                            {"op": "head", "endpoint": ENDPOINTS[style], "name": name})
            recorder.record(f"{prefix}/get-range", lambda t, r, blob=blob: blob(t).download_blob(
                offset=5, length=10, etag=etag, match_condition=MatchConditions.IfNotModified, client_request_id=r),
                {"op": "getRange", "endpoint": ENDPOINTS[style], "name": name, "start": 5, "end": 15, "etag": etag})
            recorder.record(f"{prefix}/delete", lambda t, r, blob=blob: blob(t).delete_blob(
                delete_snapshots="include", client_request_id=r),
                {"op": "delete", "endpoint": ENDPOINTS[style], "name": name})
        name = names["odd"]

        def blob(transport, style=style):
            return service(transport, style).get_blob_client("ckpts", name)

        prefix = f"{style}"
        recorder.record(f"{prefix}/put-blob-overwrite-typed", lambda t, r, blob=blob: blob(t).upload_blob(
            hello, overwrite=True, metadata={"terncrc32c": crc32c_hex(0x0000FFFF), "ternwrite": write_id}, validate_content="crc64",
            content_settings=ContentSettings(content_type="application/json"), client_request_id=r),
            {"op": "putBlob", "endpoint": ENDPOINTS[style], "name": name, "body": base64.b64encode(hello).decode(),
             "createOnly": False, "contentType": "application/json", "crc32c": crc32c_hex(0x0000FFFF), "crc64": crc64_header(hello),
             "writeID": write_id})
        for number, block_id in enumerate(block_ids, start=1):
            recorder.record(f"{prefix}/put-block-{number}", lambda t, r, blob=blob, block_id=block_id: blob(t).stage_block(
                block_id, block, validate_content="crc64", client_request_id=r),
                {"op": "putBlock", "endpoint": ENDPOINTS[style], "name": name, "blockID": block_id,
                 "body": base64.b64encode(block).decode(), "crc64": crc64_header(block)})
        recorder.record(f"{prefix}/put-block-list-create-only", lambda t, r, blob=blob: blob(t).commit_block_list(
            block_ids, metadata={"terncrc32c": crc32c_hex(0xDEADBEEF), "ternwrite": write_id}, etag="*", match_condition=MatchConditions.IfMissing,
            client_request_id=r),
            {"op": "putBlockList", "endpoint": ENDPOINTS[style], "name": name, "blockIDs": block_ids, "createOnly": True,
             "crc32c": crc32c_hex(0xDEADBEEF), "writeID": write_id})
        recorder.record(f"{prefix}/put-block-list-typed", lambda t, r, blob=blob: blob(t).commit_block_list(
            block_ids, metadata={"terncrc32c": crc32c_hex(1), "ternwrite": write_id}, content_settings=ContentSettings(content_type="text/plain"),
            client_request_id=r),
            {"op": "putBlockList", "endpoint": ENDPOINTS[style], "name": name, "blockIDs": block_ids, "createOnly": False,
             "contentType": "text/plain", "crc32c": crc32c_hex(1), "writeID": write_id})
        recorder.record(f"{prefix}/get-block-list", lambda t, r, blob=blob: blob(t).get_block_list("all", client_request_id=r),
                        {"op": "getBlockList", "endpoint": ENDPOINTS[style], "name": name})
        for page, marker in (("first", None), ("next", "2!88!MDAwMDE0IXJ1biAxL2NrcHQvZmlsZS0zITAwMDAyOCE5OTk5LTEyLTMxVDIzOjU5OjU5Ljk5OTk5OTlaIQ--")):
            recorder.record(f"{prefix}/list-{page}", lambda t, r, marker=marker, style=style: list(
                service(t, style).get_container_client("ckpts").list_blobs(
                    name_starts_with="run 1/ckpt/", results_per_page=2, client_request_id=r).by_page(continuation_token=marker)),
                {"op": "list", "endpoint": ENDPOINTS[style], "prefix": "run 1/ckpt/", "maxResults": 2, "marker": marker})
        source = f"{ENDPOINTS[style]}/ckpts/run-1/src.bin"
        sas = "se=2023-11-14T22%3A28%3A20Z&sp=r&sv=2021-08-06&sr=b&sig=abc%2Bdef/ghi%3D"
        recorder.record(f"{prefix}/copy-sync", lambda t, r, blob=blob: blob(t).start_copy_from_url(
            f"{source}?{sas}", source_etag=etag, source_match_condition=MatchConditions.IfNotModified,
            headers={"x-ms-requires-sync": "true"}, client_request_id=r),
            {"op": "copy", "endpoint": ENDPOINTS[style], "name": name, "source": "run-1/src.bin", "sourceSAS": sas,
             "sourceETag": etag, "sync": True})
        recorder.record(f"{prefix}/copy-async", lambda t, r, blob=blob: blob(t).start_copy_from_url(
            source, source_etag=etag, source_match_condition=MatchConditions.IfNotModified, client_request_id=r),
            {"op": "copy", "endpoint": ENDPOINTS[style], "name": name, "source": "run-1/src.bin", "sourceETag": etag, "sync": False})
        recorder.record(f"{prefix}/create-container", lambda t, r, style=style: service(t, style).get_container_client(
            "tern-test-1").create_container(client_request_id=r),
            {"op": "createContainer", "endpoint": ENDPOINTS[style], "container": "tern-test-1"})
    return recorder.vectors


def sas_tokens():
    cases = [
        {"container": "ckpts", "blob": "run-1/step-10/model.bin", "permissions": "r",
         "expiry": datetime(2023, 11, 14, 23, 13, 20, tzinfo=timezone.utc), "start": None, "protocol": "https"},
        {"container": "ckpts", "blob": "run 1/ü+x%.bin", "permissions": "racwd",
         "expiry": datetime(2024, 1, 1, tzinfo=timezone.utc), "start": datetime(2023, 12, 31, 23, 45, tzinfo=timezone.utc),
         "protocol": None},
        {"container": "tern-test-1", "blob": "a/b/c", "permissions": "rw",
         "expiry": datetime(2030, 6, 1, 12, 0, 1, tzinfo=timezone.utc), "start": None, "protocol": "https,http"},
    ]
    results = []
    for case in cases:
        signer = BlobSharedAccessSignature(ACCOUNT, account_key=KEY)
        signer.x_ms_version = VERSION
        captured = []
        token = signer.generate_blob(case["container"], case["blob"], permission=case["permissions"], expiry=case["expiry"],
                                     start=case["start"], protocol=case["protocol"], sts_hook=captured.append)
        results.append({
            "container": case["container"], "blob": case["blob"], "permissions": case["permissions"],
            "expiry": int(case["expiry"].timestamp()), "start": int(case["start"].timestamp()) if case["start"] else None,
            "protocol": case["protocol"], "stringToSign": captured[0], "token": token,
        })
    return results


def crc64_vectors():
    state = 1
    pseudo = bytearray()
    for _ in range(3000):
        state = (state * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        pseudo.append((state >> 33) & 0xFF)
    cases = [b"", b"a", b"123456789", b"hello, tern", bytes(range(256)) * 4, bytes(pseudo)]
    return [{"data": base64.b64encode(data).decode(), "crc64": f"{checksums.crc64.compute(data, 0):016x}",
             "header": crc64_header(data)} for data in cases]


def header_order():
    """The order the SDK (emulating the service's culture-aware sort) gives x-ms-* header names."""
    names = ["x-ms-version", "x-ms-blob-type", "x-ms-blobtype", "x-ms-blob-content-type", "x-ms-meta-a-b", "x-ms-meta-ab",
             "x-ms-meta-a", "x-ms-meta-b", "x-ms-date", "x-ms-meta-a1", "x-ms-meta-1a", "x-ms-meta-a_b", "x-ms-meta-ab-",
             "x-ms-meta-a--b", "x-ms-meta-terncrc32c", "x-ms-meta-ternwrite", "x-ms-content-crc64", "x-ms-copy-source",
             "x-ms-client-request-id", "x-ms-range", "x-ms-requires-sync", "x-ms-source-if-match", "x-ms-delete-snapshots",
             "x-ms-meta-x'y", "x-ms-meta-x-y", "x-ms-meta-xy"]
    return [name for name, _ in _storage_header_sort([(name, "") for name in names])]


def check_fake():
    """Drives the fake Blob service with the SDK and checks every answer."""
    storage_policies.time = time.time  # the real clock: the fake checks x-ms-date
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = os.path.join(ROOT, "Tests", "TernStorageTests", "Fixtures", "azure", "fake_blob_service.py")
    fake = subprocess.Popen([sys.executable, script, "--port", str(port), "--account", ACCOUNT, "--key", KEY])
    try:
        for _ in range(100):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}/{ACCOUNT}"
        client = BlobServiceClient(url, credential={"account_name": ACCOUNT, "account_key": KEY}, api_version=VERSION)
        container = client.get_container_client("sdk-check")
        container.create_container()
        blob = container.get_blob_client("dir/a b+ü.bin")
        blob.upload_blob(b"hello world", validate_content="crc64")
        try:
            blob.upload_blob(b"x", overwrite=False)
            raise SystemExit("the fake let a create-only put overwrite")
        except ResourceExistsError:
            pass
        assert blob.download_blob(offset=2, length=4).readall() == b"llo "
        assert blob.get_blob_properties().size == 11
        big = container.get_blob_client("big")
        big.stage_block("block-1", b"a" * 1000, validate_content="crc64")
        big.stage_block("block-2", b"b" * 10)
        assert len(big.get_block_list("all")[1]) == 2
        big.commit_block_list(["block-1", "block-2"])
        assert big.get_blob_properties().size == 1010
        for index in range(5):
            container.upload_blob(f"list/{index}", b"x")
        assert [b.name for b in container.list_blobs(name_starts_with="list/", results_per_page=2)] == [f"list/{i}" for i in range(5)]
        sas = generate_blob_sas(ACCOUNT, "sdk-check", "big", account_key=KEY, permission="r",
                                expiry=datetime.now(timezone.utc) + timedelta(hours=1))
        copy = container.get_blob_client("copy")
        copy.start_copy_from_url(f"{url}/sdk-check/big?{sas}", requires_sync=True)
        assert copy.get_blob_properties().size == 1010
        blob.delete_blob()
        wrong = BlobServiceClient(url, credential={"account_name": ACCOUNT, "account_key": "AAAA" + KEY[4:]}, api_version=VERSION)
        try:
            wrong.get_container_client("sdk-check").get_blob_client("big").get_blob_properties()
            raise SystemExit("the fake accepted a wrong key")
        except ClientAuthenticationError:
            pass
        print("the fake accepts the SDK's requests and refuses a wrong key")
    finally:
        fake.terminate()
        fake.wait()


def main():
    if "--check-fake" in sys.argv:
        check_fake()
        return
    document = {
        "generator": "scripts/azure-vectors.py (azure-storage-blob SDK, capture transport, fixed clock)",
        "account": ACCOUNT,
        "key": KEY,
        "version": VERSION,
        "date": "Tue, 14 Nov 2023 22:13:20 GMT",
        "clock": CLOCK,
        "requests": requests(),
        "sas": sas_tokens(),
        "crc64": crc64_vectors(),
        "headerOrder": header_order(),
    }
    text = json.dumps(document, indent=1, ensure_ascii=False) + "\n"
    if "--check" in sys.argv:
        with open(OUTPUT, encoding="utf-8") as f:
            if f.read() != text:
                raise SystemExit(f"{OUTPUT} differs from what the SDK produces now")
        print(f"{OUTPUT}: up to date")
        return
    with open(OUTPUT, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {len(document['requests'])} request vectors, {len(document['sas'])} SAS tokens and "
          f"{len(document['crc64'])} CRC64 values to {OUTPUT}")


if __name__ == "__main__":
    main()
