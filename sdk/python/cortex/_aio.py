"""Asyncio bus client (used through cortex.bus.publish_async / subscribe_async)."""

from __future__ import annotations

import asyncio
import os
import time
import weakref
from typing import Any, Dict, Mapping, Optional

from ._wire import (
    LINE_LIMIT,
    Backoff,
    BusError,
    Message,
    PermissionDenied,
    Unavailable,
    check_channel,
    check_size,
    decode_line,
    default_timeout,
    encode_payload,
    error_from,
    new_msg_id,
    publish_line,
    request_line,
    socket_path,
)


class _Lost(Exception):
    """The connection ended while a request was in flight."""


async def _open(path: str, deadline: Optional[float], backoff: Backoff):
    """Open a connection and read hello, retrying transient failures until
    deadline (None: forever)."""
    from .bus import _transient

    while True:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise Unavailable(f"bus socket {path} is not answering", "unavailable")
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(path, limit=LINE_LIMIT), 10.0 if remaining is None else min(10.0, remaining)
            )
            try:
                raw = await asyncio.wait_for(reader.readline(), 10.0)
                if not raw:
                    raise ConnectionResetError("bus closed the connection before hello")
                hello = decode_line(raw)
            except BaseException:
                writer.close()
                raise
            if hello.get("op") == "error":
                writer.close()
                raise error_from(hello)
            backoff.reset()
            return reader, writer, hello
        except BusError:
            raise
        except PermissionError as e:
            raise PermissionDenied(f"cannot connect to the bus socket {path}: {e}", "forbidden") from e
        except (OSError, asyncio.TimeoutError, ValueError) as e:
            if isinstance(e, OSError) and not _transient(e):
                raise
        delay = backoff.next()
        if deadline is not None:
            delay = min(delay, max(0.0, deadline - time.monotonic()))
        await asyncio.sleep(delay)


class _Client:
    """One event loop's publishing connection; requests are pipelined."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.pid = os.getpid()
        self.reader: Optional[asyncio.StreamReader] = None
        self.writer: Optional[asyncio.StreamWriter] = None
        self.hello: Dict[str, Any] = {}
        self.pending: Dict[str, asyncio.Future] = {}
        self.seq = 0
        self.gen = 0
        self.lock = asyncio.Lock()
        self.task: Optional[asyncio.Task] = None

    async def ensure(self, deadline: float, backoff: Backoff) -> None:
        async with self.lock:
            if self.writer is not None:
                return
            reader, writer, hello = await _open(self.path, deadline, backoff)
            self.gen += 1
            self.reader, self.writer, self.hello = reader, writer, hello
            self.task = asyncio.get_running_loop().create_task(self._read(reader, self.gen))

    async def _read(self, reader: asyncio.StreamReader, gen: int) -> None:
        try:
            while True:
                raw = await reader.readline()
                if not raw:
                    break
                try:
                    obj = decode_line(raw)
                except ValueError:
                    continue
                fut = self.pending.pop(str(obj.get("id", "")), None)
                if fut is not None and not fut.done():
                    fut.set_result(obj)
        except (OSError, ValueError, asyncio.IncompleteReadError):
            pass
        finally:
            if gen == self.gen:
                self._lose()

    def _lose(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None
        pending, self.pending = self.pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(_Lost())

    async def publish(self, channel: str, payload: Mapping, timeout: Optional[float]) -> str:
        check_channel(channel)
        data = encode_payload(payload)
        msg_id = new_msg_id()
        deadline = time.monotonic() + (default_timeout() if timeout is None else timeout)
        backoff = Backoff()
        loop = asyncio.get_running_loop()
        while True:
            await self.ensure(deadline, backoff)
            writer = self.writer
            if writer is None:
                continue
            check_size(data, self.hello.get("max_payload"))
            self.seq += 1
            rid = str(self.seq)
            fut = loop.create_future()
            self.pending[rid] = fut
            try:
                writer.write(publish_line(rid, channel, msg_id, data))
                await writer.drain()
                reply = await asyncio.wait_for(fut, max(0.001, deadline - time.monotonic()))
            except asyncio.TimeoutError:  # before OSError: a subclass of it on 3.11+
                self.pending.pop(rid, None)
                raise Unavailable(f"publish to {channel!r} timed out", "unavailable") from None
            except (_Lost, OSError) as e:
                self.pending.pop(rid, None)
                if writer is self.writer:
                    self._lose()
                if time.monotonic() >= deadline:
                    raise Unavailable(f"publish to {channel!r} timed out: {e!r}", "unavailable") from None
                await asyncio.sleep(min(backoff.next(), max(0.0, deadline - time.monotonic())))
                continue
            if reply.get("op") == "ok":
                return str(reply.get("msg_id") or msg_id)
            err = error_from(reply)
            if err.code == "unavailable" and time.monotonic() < deadline:
                await asyncio.sleep(min(backoff.next(), max(0.0, deadline - time.monotonic())))
                continue
            raise err


_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Client]" = weakref.WeakKeyDictionary()


async def publish(channel: str, payload: Mapping, timeout: Optional[float]) -> str:
    loop = asyncio.get_running_loop()
    c = _clients.get(loop)
    if c is None or c.pid != os.getpid() or c.path != socket_path():
        c = _Client(socket_path())
        _clients[loop] = c
    return await c.publish(channel, payload, timeout)


class AsyncSubscription:
    """Async iterator over a channel's messages; same semantics as
    cortex.bus.Subscription (auto-ack when the next message is requested)."""

    def __init__(self, channel: str, *, auto_ack: bool = True, path: Optional[str] = None) -> None:
        self.channel = check_channel(channel)
        self.auto_ack = auto_ack
        self.path = path or socket_path()
        self.durable = False
        self._reader: Optional[asyncio.StreamReader] = None
        self._writer: Optional[asyncio.StreamWriter] = None
        self._sub: Optional[str] = None
        self._gen = 0
        self._last: Optional[Message] = None
        self._closed = False
        self._backoff = Backoff()

    async def _open(self) -> None:
        while not self._closed:
            try:
                reader, writer, _ = await _open(self.path, None, self._backoff)
            except BusError as e:
                if e.code != "unavailable":
                    raise
                continue
            try:
                writer.write(request_line({"op": "subscribe", "id": "s", "channel": self.channel}))
                await writer.drain()
                while True:
                    raw = await asyncio.wait_for(reader.readline(), 30.0)
                    if not raw:
                        raise ConnectionResetError("bus connection closed")
                    reply = decode_line(raw)
                    if reply.get("id") == "s" or reply.get("op") == "error":
                        break
            except (OSError, asyncio.TimeoutError, ValueError):
                writer.close()
                await asyncio.sleep(self._backoff.next())
                continue
            if reply.get("op") != "ok":
                writer.close()
                err = error_from(reply)
                if err.code == "unavailable":
                    await asyncio.sleep(self._backoff.next())
                    continue
                raise err
            self._reader, self._writer = reader, writer
            self._sub = str(reply.get("sub"))
            self.durable = bool(reply.get("durable", False))
            self._gen += 1
            return

    def _drop(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    def _settler(self, token: str):
        gen, writer = self._gen, self._writer

        def settle(op: str) -> None:
            if writer is None or gen != self._gen or self._writer is not writer:
                return
            try:
                writer.write(request_line({"op": op, "ack": token}))
            except (OSError, RuntimeError):
                pass

        return settle

    def __aiter__(self) -> "AsyncSubscription":
        return self

    async def __anext__(self) -> Message:
        if self._last is not None:
            last, self._last = self._last, None
            last.ack()
        while not self._closed:
            if self._reader is None:
                await self._open()
                if self._reader is None:
                    break
            try:
                raw = await self._reader.readline()
                line = decode_line(raw) if raw else None
            except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
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
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """Stop receiving. Unacknowledged durable messages are redelivered."""
        self._closed = True
        self._last = None
        self._drop()

    async def __aenter__(self) -> "AsyncSubscription":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()
