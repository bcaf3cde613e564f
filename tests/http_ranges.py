"""A loopback HTTP file server answering HEAD, GET and single Range requests, for the URL
input tests."""
from __future__ import annotations

from http.server import BaseHTTPRequestHandler


class RangeFileHandler(BaseHTTPRequestHandler):
    """Serves files under server.root with Content-Length and single Range requests."""
    protocol_version = "HTTP/1.1"

    def do_HEAD(self):
        self._serve(send_body=False)

    def do_GET(self):
        self._serve(send_body=True)

    def _serve(self, send_body: bool) -> None:
        path = self.server.root / self.path.split("?")[0].lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        requested = self.headers.get("Range")
        self.server.requests.append((self.command, requested))
        status, body, extra = 200, data, {}
        if requested:
            first, last = _byte_range(requested, len(data))
            status, body = 206, data[first:last + 1]
            extra = {"Content-Range": f"bytes {first}-{last}/{len(data)}"}
        self.send_response(status)
        for name, value in {"Content-Length": str(len(body)), "Accept-Ranges": "bytes",
                            "Content-Type": "application/octet-stream", **extra}.items():
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, *args):
        pass


def _byte_range(header: str, size: int) -> tuple[int, int]:
    first, _, last = header.removeprefix("bytes=").partition("-")
    return int(first), min(int(last) if last else size - 1, size - 1)
