"""A pass-through HTTP proxy in front of moto that injects the S3 failures the store must survive.

Requests are forwarded byte for byte (method, target, headers including Host, body), so moto
checks the signature Tern computed for the proxy's address. A fault is armed per bucket and used
once:

  POST /__fault {"bucket": B, "operation": OP, "mode": MODE}
    OP:   "complete" (POST ...?uploadId=), "part" (PUT ...?partNumber=), "get" (GET of an object),
          "head" (HEAD of an object)
    MODE: "error-before"  answer 200 with <Error><Code>InternalError</Code>, moto never sees it
          "error-after"   forward, then answer 200 with that error instead of moto's answer
          "error-final"   answer 200 with <Error><Code>InvalidPart</Code> (not retryable)
          "slowdown"      answer 503 SlowDown, moto never sees it
          "truncate"      forward, send the status, headers and half the body, then close
          "bad-checksum"  forward, but report x-amz-checksum-crc32c as 3q2+7w== (0xdeadbeef)
  GET /__fault/stats?bucket=B   {"complete": n, "part": n, "get": n, "head": n} requests seen per operation
"""
import argparse
import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LOCK = threading.Lock()
FAULTS = {}   # (bucket, operation) -> mode
STATS = {}    # bucket -> {operation: count}
UPSTREAM = ("127.0.0.1", 0)

ERROR = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
         b'<Message>{message}</Message><RequestId>fault</RequestId></Error>')


def error_body(code, message):
    return ERROR.replace(b"{code}", code.encode()).replace(b"{message}", message.encode())


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, content_type="application/xml"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def classify(self):
        parts = urlsplit(self.path)
        segments = parts.path.split("/")
        bucket = segments[1] if len(segments) > 1 else ""
        query = parse_qs(parts.query, keep_blank_values=True)
        if self.command == "POST" and "uploadId" in query:
            return bucket, "complete"
        if self.command == "PUT" and "partNumber" in query:
            return bucket, "part"
        if self.command == "GET" and len(segments) > 2 and segments[2]:
            return bucket, "get"
        if self.command == "HEAD" and len(segments) > 2 and segments[2]:
            return bucket, "head"
        return bucket, None

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path.startswith("/__fault"):
            return self.control(body)
        bucket, operation = self.classify()
        mode = None
        if operation:
            with LOCK:
                counts = STATS.setdefault(bucket, {})
                counts[operation] = counts.get(operation, 0) + 1
                mode = FAULTS.pop((bucket, operation), None)
        if mode == "error-before":
            return self.reply(200, error_body("InternalError", "We encountered an internal error. Please try again."))
        if mode == "error-final":
            return self.reply(200, error_body("InvalidPart", "One or more of the specified parts could not be found."))
        if mode == "slowdown":
            return self.reply(503, error_body("SlowDown", "Please reduce your request rate."))
        upstream = http.client.HTTPConnection(*UPSTREAM, timeout=60)
        headers = {name: value for name, value in self.headers.items()}
        upstream.request(self.command, self.path, body=body if body or self.command in ("PUT", "POST") else None, headers=headers)
        response = upstream.getresponse()
        data = response.read()
        upstream.close()
        if mode == "error-after":
            return self.reply(200, error_body("InternalError", "We encountered an internal error. Please try again."))
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                if mode == "bad-checksum" and name.lower() == "x-amz-checksum-crc32c":
                    value = "3q2+7w=="
                self.send_header(name, value)
        # A HEAD answer's Content-Length is the object's size, not this (empty) body's.
        self.send_header("Content-Length", response.getheader("Content-Length", "0") if self.command == "HEAD" else str(len(data)))
        if mode == "truncate":
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def control(self, body):
        if self.command == "POST":
            fault = json.loads(body or b"{}")
            with LOCK:
                FAULTS[(fault["bucket"], fault["operation"])] = fault["mode"]
            return self.reply(200, b"{}", "application/json")
        bucket = parse_qs(urlsplit(self.path).query).get("bucket", [""])[0]
        with LOCK:
            stats = dict(STATS.get(bucket, {}))
        self.reply(200, json.dumps(stats).encode(), "application/json")

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


def main():
    global UPSTREAM
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream-port", type=int, required=True)
    args = parser.parse_args()
    UPSTREAM = ("127.0.0.1", args.upstream_port)
    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
