"""The bench's load generator: raw HTTP/1.1 keep-alive sockets, one per worker thread, the same code
for every target so the router and a direct connection are measured alike.

Timings are per request: time to the end of the response head (TTFB) and to the last body byte (TTLB).
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


class HttpError(Exception):
    pass


@dataclass
class Sample:
    status: int
    ttfb: float
    ttlb: float
    size: int
    ttft: float = 0.0  # time to the first body byte (a streamed reply's first token)


class Conn:
    """One keep-alive connection; reconnects when the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        self.addr = (host, port)
        self.sock: socket.socket | None = None
        self.buf = b""

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _recv(self) -> None:
        assert self.sock is not None
        data = self.sock.recv(262_144)
        if not data:
            raise HttpError("connection closed mid-response")
        self.buf += data

    def _until(self, marker: bytes) -> bytes:
        while (at := self.buf.find(marker)) < 0:
            self._recv()
        out, self.buf = self.buf[:at], self.buf[at + len(marker) :]
        return out

    def _exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._recv()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def request(
        self, method: str, host_path: str, body: bytes, extra: dict[str, str] | None = None
    ) -> tuple[Sample, bytes]:
        if self.sock is None:
            self.sock = socket.create_connection(self.addr)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.buf = b""
        head = f"{method} {host_path} HTTP/1.1\r\nHost: {self.addr[0]}:{self.addr[1]}\r\n"
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in (extra or {}).items()) + "\r\n"
        start = time.perf_counter()
        self.sock.sendall(head.encode() + body)
        lines = self._until(b"\r\n\r\n").split(b"\r\n")
        ttfb = ttft = time.perf_counter() - start
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (x.decode().partition(":") for x in lines[1:])}
        if "content-length" in headers:
            data = self._exactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while size := int(self._until(b"\r\n").split(b";")[0], 16):
                parts.append(self._exactly(size))
                if len(parts) == 1:
                    ttft = time.perf_counter() - start
                self._exactly(2)
            self._until(b"\r\n")  # no trailers: the empty line after the last chunk
            data = b"".join(parts)
        else:
            raise HttpError("response without length")
        ttlb = time.perf_counter() - start
        if headers.get("connection", "").lower() == "close":
            self.close()
        if "content-length" in headers:
            ttft = ttlb
        return Sample(status, ttfb, ttlb, len(data), ttft), data


@dataclass
class RoundResult:
    samples: list[Sample] = field(default_factory=list)
    wall: float = 0.0
    errors: list[str] = field(default_factory=list)


def run_round(
    conns: list[Conn],
    path: str,
    body: bytes,
    requests: int,
    check: bytes,
    headers: Callable[[str, str, bytes], dict[str, str]] | None = None,
) -> RoundResult:
    """`requests` POSTs spread over one thread per connection; `check` must occur in every body. `headers`
    makes extra headers per request (e.g. a fleet-token signature), outside the timed part."""
    counter = itertools.count()
    result = RoundResult()
    lock = threading.Lock()

    def worker(conn: Conn) -> None:
        mine: list[Sample] = []
        while next(counter) < requests:
            try:
                extra = headers("POST", path, body) if headers else None
                sample, data = conn.request("POST", path, body, extra)
                if sample.status != 200 or check not in data:
                    raise HttpError(f"status {sample.status}: {data[:200]!r}")
                mine.append(sample)
            except (OSError, HttpError) as err:
                conn.close()
                with lock:
                    result.errors.append(str(err))
        with lock:
            result.samples.extend(mine)

    threads = [threading.Thread(target=worker, args=(c,)) for c in conns]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.wall = time.perf_counter() - start
    return result
