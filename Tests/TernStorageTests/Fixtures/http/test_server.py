"""A small HTTP/1.1 server for Tern's HTTP client tests (Python standard library only).

Usage: test_server.py PORT [CERT KEY]   (with CERT and KEY it speaks TLS)

Routes:
  GET  /bytes/N          N bytes of a fixed pattern, with Content-Length
  GET  /chunked/N        the same bytes in chunked transfer encoding (chunks of 1000)
  GET  /close/N          the same bytes, no length, connection closed after
  PUT  /echo             answers with the SHA-256 hex of the body it got and its length
  GET  /status/CODE      an empty answer with that status
  GET  /flaky/KEY/K      503 for the first K requests with that KEY, then 200 "ok"
  GET  /connection       how many requests this connection has carried (keep-alive check)
  GET  /drop             closes the connection without answering
"""
import hashlib
import http.server
import socketserver
import ssl
import sys
import threading

PATTERN = bytes((i * 7 + 3) % 251 for i in range(1 << 16))
flaky_counts = {}
lock = threading.Lock()


def pattern(n):
    out = bytearray()
    while len(out) < n:
        out += PATTERN[: n - len(out)]
    return bytes(out)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        self.requests_on_connection = 0

    def handle_one_request(self):
        self.requests_on_connection += 1
        super().handle_one_request()

    def send_body(self, status, body, headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        parts = self.path.strip("/").split("/")
        if parts[0] == "bytes":
            self.send_body(200, pattern(int(parts[1])))
        elif parts[0] == "chunked":
            body = pattern(int(parts[1]))
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(body), 1000):
                piece = body[start : start + 1000]
                self.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif parts[0] == "close":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(pattern(int(parts[1])))
            self.close_connection = True
        elif parts[0] == "status":
            self.send_body(int(parts[1]), b"")
        elif parts[0] == "flaky":
            with lock:
                flaky_counts[parts[1]] = flaky_counts.get(parts[1], 0) + 1
                count = flaky_counts[parts[1]]
            if count <= int(parts[2]):
                self.send_body(503, b"<Error><Code>SlowDown</Code><Message>try later</Message></Error>")
            else:
                self.send_body(200, b"ok")
        elif parts[0] == "connection":
            self.send_body(200, str(self.requests_on_connection).encode())
        elif parts[0] == "drop":
            self.close_connection = True
            self.connection.close()
        else:
            self.send_body(404, b"no such route")

    def do_PUT(self):
        length = int(self.headers.get("Content-Length", "0"))
        digest = hashlib.sha256()
        remaining = length
        while remaining > 0:
            piece = self.rfile.read(min(remaining, 1 << 20))
            if not piece:
                break
            digest.update(piece)
            remaining -= len(piece)
        self.send_body(200, f"{digest.hexdigest()} {length - remaining}".encode())


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    port = int(sys.argv[1])
    server = Server(("127.0.0.1", port), Handler)
    if len(sys.argv) == 4:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(sys.argv[2], sys.argv[3])
        server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
