"""Shared pieces of the bus client: errors, messages, encoding, socket path.

Standard library only; Python 3.10-3.13. See docs/bus-protocol.md.
"""

from __future__ import annotations

import json
import os
import random
import uuid
from collections.abc import Mapping
from typing import Any, Callable, Dict, Optional

SOCKET_ENV = "CORTEX_BUS"
DEFAULT_SOCKET = "/run/cortex/bus.sock"
TIMEOUT_ENV = "CORTEX_BUS_TIMEOUT"
DEFAULT_TIMEOUT = 30.0
PROTOCOL = 1
# asyncio stream limit: large enough for any configured payload plus envelope.
LINE_LIMIT = 64 << 20


def socket_path() -> str:
    """The agent's bus socket: $CORTEX_BUS, else /run/cortex/bus.sock."""
    return os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET


def default_timeout() -> float:
    try:
        return float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT))
    except ValueError:
        return DEFAULT_TIMEOUT


class BusError(Exception):
    """An error reported by the bus. ``code`` is the protocol's error code
    (invalid, forbidden, payload_too_large, not_found, unavailable,
    internal); ``hint`` says how to fix it when the daemon knows."""

    def __init__(self, message: str, code: str = "internal", hint: str = "") -> None:
        super().__init__(message + (f" (hint: {hint})" if hint else ""))
        self.code = code
        self.hint = hint


class PermissionDenied(BusError):
    """The agent's bus ACL (bus.publish / bus.subscribe) refuses the channel,
    or the socket belongs to another user."""


class PayloadTooLarge(BusError):
    """The payload is over the daemon's bus.max_payload."""


class InvalidRequest(BusError):
    """A bad channel name, a payload that is not a JSON object, ..."""


class Unavailable(BusError):
    """The daemon could not be reached before the timeout."""


_BY_CODE = {
    "forbidden": PermissionDenied,
    "payload_too_large": PayloadTooLarge,
    "invalid": InvalidRequest,
    "unavailable": Unavailable,
}


def error_from(reply: Mapping) -> BusError:
    code = str(reply.get("code") or "internal")
    cls = _BY_CODE.get(code, BusError)
    return cls(str(reply.get("error") or code), code, str(reply.get("hint") or ""))


class Message(dict):
    """A received message: the payload dict itself, plus metadata attributes.

    ``channel``, ``id`` (message id), ``sender`` (the publishing agent, as the
    daemon knows it; "" for operator publishes), ``node`` (daemon node id it
    entered on), ``time`` (RFC 3339 string), ``seq`` (store sequence on
    durable channels, else None), ``durable``, ``redelivered``.

    On durable channels ``ack()`` acknowledges the message (see the SDK
    README for when iteration does it for you) and ``nak()`` asks for
    redelivery. Both are no-ops on non-durable channels and after the first
    call.
    """

    __slots__ = ("channel", "id", "sender", "node", "time", "seq", "durable", "redelivered", "_settle")

    def __init__(self, payload: Mapping, line: Mapping, settle: Optional[Callable[[str], None]] = None) -> None:
        super().__init__(payload)
        self.channel: str = line.get("channel", "")
        self.id: str = line.get("msg_id", "")
        self.sender: str = line.get("from", "")
        self.node: str = line.get("node", "")
        self.time: str = line.get("time", "")
        self.seq: Optional[int] = line.get("seq")
        self.durable: bool = "ack" in line
        self.redelivered: bool = bool(line.get("redelivered", False))
        self._settle = settle

    def ack(self) -> None:
        """Acknowledge (durable channels): the message will not come again."""
        self._done("ack")

    def nak(self) -> None:
        """Return the message (durable channels) for prompt redelivery."""
        self._done("nak")

    def _done(self, op: str) -> None:
        settle, self._settle = self._settle, None
        if settle is not None:
            settle(op)

    @property
    def settled(self) -> bool:
        return self._settle is None

    def metadata(self) -> Dict[str, Any]:
        return metadata(self)

    def __reduce__(self):  # pickles as a plain dict
        return (dict, (dict(self),))


def metadata(message: Message) -> Dict[str, Any]:
    """The metadata of a received message as a dict."""
    return {
        "channel": message.channel,
        "id": message.id,
        "sender": message.sender,
        "node": message.node,
        "time": message.time,
        "seq": message.seq,
        "durable": message.durable,
        "redelivered": message.redelivered,
    }


def encode_payload(payload: Any) -> bytes:
    """JSON-encode a payload, which must be a mapping (a JSON object)."""
    if not isinstance(payload, Mapping):
        raise TypeError(f"payload must be a dict (a JSON object), not {type(payload).__name__}")
    if not isinstance(payload, dict):
        payload = dict(payload)
    try:
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: let json escape them
        return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode("ascii")


def publish_line(rid: str, channel: str, msg_id: str, data: bytes) -> bytes:
    # id and op come before the payload so the daemon can answer even a
    # line it refuses as too long.
    head = '{"op":"publish","id":%s,"channel":%s,"msg_id":%s,"payload":' % (
        json.dumps(rid),
        json.dumps(channel),
        json.dumps(msg_id),
    )
    return head.encode("utf-8") + data + b"}\n"


def request_line(obj: Mapping) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("utf-8") + b"\n"


def check_channel(channel: Any) -> str:
    if not isinstance(channel, str) or not channel:
        raise TypeError("channel must be a non-empty str")
    return channel


def new_msg_id() -> str:
    return uuid.uuid4().hex


def check_size(data: bytes, max_payload: Optional[int]) -> None:
    if max_payload and len(data) > max_payload:
        raise PayloadTooLarge(
            f"payload is {len(data)} bytes, over the bus limit of {max_payload}",
            "payload_too_large",
            "send a reference (a file path or URL) instead of the data",
        )


class Backoff:
    """Exponential backoff with jitter: 50 ms doubling to 2 s."""

    def __init__(self, first: float = 0.05, cap: float = 2.0) -> None:
        self.first, self.cap, self.cur = first, cap, first

    def next(self) -> float:
        d = self.cur
        self.cur = min(self.cur * 2, self.cap)
        return d * (0.75 + random.random() * 0.5)

    def reset(self) -> None:
        self.cur = self.first


def decode_line(raw: bytes) -> Dict[str, Any]:
    obj = json.loads(raw)
    if not isinstance(obj, dict):
        raise ValueError("bus line is not a JSON object")
    return obj
