"""Serve an emulator on a real loopback socket (stdlib `ThreadingHTTPServer` in a daemon thread).

Connection-level faults become real socket behaviour: `drop` closes without a response, `timeout` holds the
connection, then closes it. Serves one tenant (a HaloEmulator) or many (`Tenants`, picked by `?tenant=` on the
token request). Routes under `/_emulator/` let out-of-process tests drive the tenant (a fleet of tenants only reports
its state):

    POST   /_emulator/advance  {"to": "2026-11-01T05:00:00Z"}  -> the Changes
    GET    /_emulator/state                                     -> counts and the clock
    POST   /_emulator/faults   {"kind": "status", "status": 503, "path": "/api/invoice"}
    DELETE /_emulator/faults
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import httpx

from halo_emulator.emulator import HaloEmulator
from halo_emulator.faults import DRIP, OVERSIZE, Dropped, FaultRule, Stalled
from halo_emulator.tenants import Tenants
from halo_emulator.wire import parse_moment

CONTROL_PREFIX = "/_emulator/"
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}

Served = HaloEmulator | Tenants


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], emulator: Served) -> None:
        super().__init__(address, _Handler)
        self.emulator = emulator
        self.closing = threading.Event()
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    @property
    def host_port(self) -> tuple[str, int]:
        """The bound host and port (a TCP server's host is text; the stubs also allow bytes)."""
        host, port = self.server_address[:2]
        return host if isinstance(host, str) else bytes(host).decode(), port

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.connections_lock:
                self.connections.discard(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a paging client reuses its connection
    disable_nagle_algorithm = True  # headers and body go out as two writes; Nagle would hold the body ~40 ms
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        """Quiet: the emulator keeps its own request log (emulator.stats)."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        host = self.headers.get("Host") or "{}:{}".format(*self.server.host_port)
        request = httpx.Request(self.command, f"http://{host}{self.path}", headers=dict(self.headers), content=body)
        if request.url.path.lower().startswith(CONTROL_PREFIX):
            self._write(_control(self.server.emulator, request))
            return
        try:
            response = self.server.emulator.respond(request)
        except Dropped:
            self.close_connection = True
            return
        except Stalled as stall:
            self.server.closing.wait(stall.delay_s)
            self.close_connection = True
            return
        self._write(response)

    def _write(self, response: httpx.Response) -> None:
        if response.extensions.get(OVERSIZE):
            self._stream(response)
            return
        content = response.content
        self.send_response(response.status_code)
        for name, value in response.headers.items():
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        rate = response.extensions.get(DRIP)
        if rate:  # say so: a client that only saw the socket close could send its next request into it
            self.send_header("Connection", "close")
        self.end_headers()
        if rate:
            self._drip(content, float(rate))
        else:
            self.wfile.write(content)

    def _stream(self, response: httpx.Response) -> None:
        """Send a streaming answer chunked, piece by piece as it is produced, until it ends or the client hangs up."""
        self.send_response(response.status_code)
        for name, value in response.headers.items():
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for piece in response.iter_raw():
                self.wfile.write(b"%x\r\n" % len(piece))
                self.wfile.write(piece)
                self.wfile.write(b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client gave up on the answer
            self.close_connection = True

    def _drip(self, content: bytes, bytes_per_s: float) -> None:
        """Send the body a few bytes at a time (ten writes a second, or one byte per write when slower), until it is
        all out, the client hangs up or the server closes."""
        step = max(1, int(bytes_per_s / 10))
        pause = step / bytes_per_s
        self.wfile.flush()
        for start in range(0, len(content), step):
            if start and self.server.closing.wait(pause):
                break
            try:
                self.wfile.write(content[start : start + step])
                self.wfile.flush()
            except OSError:  # the client gave up on the answer
                break


def _control(emulator: Served, request: httpx.Request) -> httpx.Response:
    action = request.url.path.lower()[len(CONTROL_PREFIX) :].strip("/")
    if action == "state" and request.method == "GET":
        return httpx.Response(200, json=emulator.summary())
    if isinstance(emulator, Tenants):
        return httpx.Response(404, json={"error": "a fleet of tenants has only GET /_emulator/state"})
    try:
        body = json.loads(request.content) if request.content else {}
        if action == "advance" and request.method == "POST":
            moment = parse_moment(body.get("to"))
            if moment is None:
                raise ValueError("'to' must be a timestamp")
            return httpx.Response(200, json=emulator.advance(moment).to_json())
        if action == "faults" and request.method == "POST":
            emulator.add_fault(FaultRule.from_json(body))
            return httpx.Response(201, json={"faults": len(emulator.faults)})
        if action == "faults" and request.method == "DELETE":
            emulator.clear_faults()
            return httpx.Response(200, json={"faults": 0})
    except (TypeError, ValueError, AttributeError) as exc:
        return httpx.Response(400, json={"error": str(exc)})
    return httpx.Response(404, json={"error": f"no control route {request.method} {request.url.path}"})


class EmulatorServer:
    """A running server; `close()` (or leaving the `with` block) stops it and drops open connections."""

    def __init__(self, emulator: Served, host: str, port: int) -> None:
        self.emulator = emulator
        self._server = _Server((host, port), emulator)
        self.host, self.port = self._server.host_port
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"halo-emulator:{self.port}",
            daemon=True,
        )
        self._thread.start()

    def close(self) -> None:
        server = self._server
        server.closing.set()
        server.shutdown()
        with server.connections_lock:
            for connection in list(server.connections):
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
        server.server_close()
        self._thread.join()

    def __enter__(self) -> EmulatorServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def serve(emulator: Served, host: str = "127.0.0.1", port: int = 0) -> EmulatorServer:
    """Serve `emulator` (one tenant, or a fleet of `Tenants`) on `host:port` (0: a free port) until closed; see
    `.url`."""
    return EmulatorServer(emulator, host, port)
