"""Cortex message bus client for agents.

    from cortex.bus import publish, subscribe
    publish(channel="analysis-results", payload={"status": "done", "score": 0.94})
    for message in subscribe("analysis-results"):
        print(message["score"])

Channels belong to the agent's project; the daemon knows which agent is on
the socket ($CORTEX_BUS, default /run/cortex/bus.sock). The client reconnects
by itself when the daemon restarts. Standard library only; Python 3.10-3.13.
Asyncio forms: ``publish_async`` and ``subscribe_async``.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
import threading
import time
from typing import Any, Dict, Iterator, Mapping, Optional

from ._wire import (
    BusError,
    InvalidRequest,
    Message,
    PayloadTooLarge,
    PermissionDenied,
    Unavailable,
    Backoff,
    check_channel,
    check_size,
    decode_line,
    default_timeout,
    encode_payload,
    error_from,
    metadata,
    new_msg_id,
    publish_line,
    request_line,
    socket_path,
)

__all__ = [
    "publish",
    "subscribe",
    "publish_async",
    "subscribe_async",
    "Subscription",
    "Message",
    "metadata",
    "close",
    "BusError",
    "PermissionDenied",
    "PayloadTooLarge",
    "InvalidRequest",
    "Unavailable",
]

# Connection failures worth retrying: the daemon is restarting or not yet up.
_TRANSIENT = (ConnectionError, FileNotFoundError, TimeoutError, socket.timeout, EOFError)


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, PermissionError):
        return False
    if isinstance(exc, _TRANSIENT):
        return True
    return isinstance(exc, OSError) and exc.errno in (
        errno.ENOENT,
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.EPIPE,
        errno.ENOTCONN,
        errno.EAGAIN,
    )


class _Conn:
    """One connection to the bus socket (blocking)."""

    def __init__(self, path: str, timeout: Optional[float]) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.timeout = timeout
        try:
            sock.settimeout(timeout)
            try:
                sock.connect(path)
            except PermissionError as e:
                raise PermissionDenied(f"cannot connect to the bus socket {path}: {e}", "forbidden") from e
            self.sock = sock
            self.rfile = sock.makefile("rb", buffering=1 << 16)
            hello = self.read()
        except BaseException:
            sock.close()
            raise
        if hello is None:
            self.close()
            raise ConnectionResetError("bus closed the connection before hello")
        if hello.get("op") == "error":
            self.close()
            raise error_from(hello)
        if hello.get("op") != "hello":
            self.close()
            raise BusError(f"unexpected first line from the bus: {hello.get('op')!r}")
        self.hello: Dict[str, Any] = hello
        self.max_payload: Optional[int] = hello.get("max_payload")
        self.wlock = threading.Lock()

    def send(self, data: bytes) -> None:
        with self.wlock:
            self.sock.sendall(data)

    def read(self) -> Optional[Dict[str, Any]]:
        """The next line, or None at end of stream."""
        raw = self.rfile.readline()
        if not raw:
            return None
        return decode_line(raw)

    def settimeout(self, t: Optional[float]) -> None:
        self.sock.settimeout(t)
        self.timeout = t

    def limit_time(self, remaining: float) -> None:
        """Bound blocking calls to about ``remaining`` seconds. Changing a
        socket's timeout costs system calls, so a timeout within a second
        of the wanted one is kept."""
        remaining = max(0.001, remaining)
        cur = self.timeout
        if cur is None or remaining < cur - 1.0 or remaining > cur + 1.0 or (remaining < 1.0 and remaining < cur):
            self.settimeout(remaining)

    def close(self) -> None:
        try:
            self.rfile.close()
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass


def _connect(path: str, deadline: Optional[float], backoff: Backoff) -> _Conn:
    """Connect, retrying transient failures until deadline (None: forever).

    Retrying forever (a subscription), it says so once on stderr, so an
    agent whose bus is unreachable is never silent about why it waits."""
    warned = False
    while True:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise Unavailable(f"bus socket {path} is not answering", "unavailable")
        try:
            conn = _Conn(path, 10.0 if remaining is None else min(10.0, remaining))
            backoff.reset()
            return conn
        except BusError:
            raise
        except OSError as e:
            if not _transient(e):
                raise
            if deadline is None and not warned:
                warned = True
                print(f"cortex.bus: cannot reach the bus at {path} ({e}); retrying until it answers", file=sys.stderr, flush=True)
        delay = backoff.next()
        if deadline is not None:
            delay = min(delay, max(0.0, deadline - time.monotonic()))
        time.sleep(delay)


class _Publisher:
    """The process's shared publishing connection (one request in flight)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.conn: Optional[_Conn] = None
        self.seq = 0

    def _drop(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def publish(self, channel: str, payload: Mapping, timeout: Optional[float]) -> str:
        check_channel(channel)
        data = encode_payload(payload)
        msg_id = new_msg_id()
        deadline = time.monotonic() + (default_timeout() if timeout is None else timeout)
        backoff = Backoff()
        with self.lock:
            while True:
                if self.conn is None:
                    self.conn = _connect(self.path, deadline, backoff)
                conn = self.conn
                check_size(data, conn.max_payload)
                self.seq += 1
                rid = str(self.seq)
                try:
                    conn.limit_time(deadline - time.monotonic())
                    conn.send(publish_line(rid, channel, msg_id, data))
                    while True:
                        reply = conn.read()
                        if reply is None:
                            raise ConnectionResetError("bus connection closed")
                        if reply.get("id") == rid or (reply.get("op") == "error" and not reply.get("id")):
                            break
                except (OSError, ValueError) as e:
                    self._drop()
                    if isinstance(e, OSError) and not _transient(e):
                        raise
                    if time.monotonic() >= deadline:
                        raise Unavailable(f"publish to {channel!r} timed out: {e}", "unavailable") from e
                    time.sleep(min(backoff.next(), max(0.0, deadline - time.monotonic())))
                    continue  # same msg_id: the daemon drops duplicates on durable channels
                if reply.get("op") == "ok":
                    return str(reply.get("msg_id") or msg_id)
                err = error_from(reply)
                if err.code == "unavailable" and time.monotonic() < deadline:
                    time.sleep(min(backoff.next(), max(0.0, deadline - time.monotonic())))
                    continue
                raise err

    def close(self) -> None:
        with self.lock:
            self._drop()


_pub: Optional[_Publisher] = None
_pub_lock = threading.Lock()


def _publisher() -> _Publisher:
    global _pub
    with _pub_lock:
        if _pub is None or _pub.pid != os.getpid() or _pub.path != socket_path():
            _pub = _Publisher(socket_path())
        return _pub


def publish(channel: str, payload: Mapping[str, Any], *, timeout: Optional[float] = None) -> str:
    """Publish ``payload`` (a dict) on ``channel``; return the message id.

    Returns once the daemon accepted the message (on a durable channel: once
    it is stored). Raises PermissionDenied when the agent's bus.publish ACL
    refuses the channel, PayloadTooLarge over the daemon's limit, TypeError
    for a payload that is not a dict, and Unavailable when the daemon cannot
    be reached within ``timeout`` seconds (default $CORTEX_BUS_TIMEOUT or 30);
    while it is restarting the call retries with backoff. Thread-safe.
    """
    return _publisher().publish(channel, payload, timeout)


def close() -> None:
    """Close the shared publishing connection (it reopens on next use)."""
    if _pub is not None:
        _pub.close()


class Subscription:
    """Iterator over a channel's messages (see ``subscribe``)."""

    def __init__(self, channel: str, *, auto_ack: bool = True, path: Optional[str] = None) -> None:
        self.channel = check_channel(channel)
        self.auto_ack = auto_ack
        self.path = path or socket_path()
        self.durable = False
        self._conn: Optional[_Conn] = None
        self._sub: Optional[str] = None
        self._gen = 0
        self._last: Optional[Message] = None
        self._closed = False
        self._backoff = Backoff()
        try:
            self._open(time.monotonic() + 1.0)
        except Unavailable:
            pass  # the daemon is not up yet: keep trying when iterated

    def _open(self, deadline: Optional[float]) -> None:
        conn = _connect(self.path, deadline, self._backoff)
        try:
            conn.settimeout(30.0)
            conn.send(request_line({"op": "subscribe", "id": "s", "channel": self.channel}))
            while True:
                reply = conn.read()
                if reply is None:
                    raise ConnectionResetError("bus connection closed")
                if reply.get("id") == "s" or reply.get("op") == "error":
                    break
            conn.settimeout(None)
        except BaseException:
            conn.close()
            raise
        if reply.get("op") != "ok":
            conn.close()
            raise error_from(reply)
        self._conn, self._sub = conn, str(reply.get("sub"))
        self.durable = bool(reply.get("durable", False))
        self._gen += 1

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _reopen(self) -> None:
        while not self._closed:
            try:
                self._open(None)
                return
            except BusError as e:
                if e.code != "unavailable":
                    raise
            except OSError as e:
                if not _transient(e):
                    raise
            time.sleep(self._backoff.next())

    def _settler(self, token: str):
        gen, conn = self._gen, self._conn

        def settle(op: str) -> None:
            # An ack is only meaningful on the connection that delivered the
            # message; after a reconnect the daemon redelivers it anyway.
            if conn is None or gen != self._gen or self._conn is not conn:
                return
            try:
                conn.send(request_line({"op": op, "ack": token}))
            except OSError:
                pass

        return settle

    def __iter__(self) -> Iterator[Message]:
        return self

    def __next__(self) -> Message:
        if self._last is not None:
            last, self._last = self._last, None
            last.ack()
        while not self._closed:
            if self._conn is None:
                self._reopen()
                if self._conn is None:
                    break
            try:
                line = self._conn.read()
            except (OSError, ValueError):
                line = None
            if line is None:
                self._drop()
                continue
            op = line.get("op")
            if op == "message" and str(line.get("sub")) == self._sub:
                token = line.get("ack")
                msg = Message(line.get("payload") or {}, line, self._settler(str(token)) if token else None)
                if token and self.auto_ack:
                    self._last = msg
                return msg
            if op == "error":
                err = error_from(line)
                if err.code == "unavailable":
                    self._drop()
                    continue
                raise err
        raise StopIteration

    def close(self) -> None:
        """Stop receiving. Unacknowledged durable messages are redelivered."""
        self._closed = True
        self._last = None
        self._drop()

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self._drop()
        except Exception:
            pass


def subscribe(channel: str, *, auto_ack: bool = True) -> Subscription:
    """Iterate over messages published on ``channel`` from now on (on a
    durable channel: also those this agent has not acknowledged yet).

    Each item is a ``Message``: the payload dict, with metadata attributes.
    On durable channels, with ``auto_ack`` (the default) a message is
    acknowledged when the loop asks for the next one, i.e. after the loop
    body for it finished without ``break`` or an exception; otherwise it is
    redelivered. Call ``message.ack()`` to acknowledge earlier, or pass
    ``auto_ack=False`` and ack yourself. Raises PermissionDenied at once
    when the agent's bus.subscribe ACL refuses the channel. Reconnects and
    resubscribes by itself when the daemon restarts.
    """
    return Subscription(channel, auto_ack=auto_ack)


async def publish_async(channel: str, payload: Mapping[str, Any], *, timeout: Optional[float] = None) -> str:
    """Asyncio form of ``publish``; concurrent calls share one connection."""
    from . import _aio

    return await _aio.publish(channel, payload, timeout)


def subscribe_async(channel: str, *, auto_ack: bool = True):
    """Asyncio form of ``subscribe``: ``async for message in subscribe_async(ch)``.

    Errors such as PermissionDenied surface on the first iteration.
    """
    from . import _aio

    return _aio.AsyncSubscription(channel, auto_ack=auto_ack)
