"""Messages on the wire: each is a 2-byte big-endian length, then a protobuf ``Message`` of that length.

Messages need not line up with WebSocket frames (V3WebSocketProtocolGuide.md, "Tunneling Data"): a frame
may carry several messages or part of one, so a reader keeps what is left over for the next frame.

>>> reader = MessageReader()
>>> wire = encode(Message(type=Message.STREAM_START, streamId=1, serviceId="SSH", connectionId=1))
>>> reader.feed(wire[:4]), [m.serviceId for m in reader.feed(wire[4:])]
([], ['SSH'])
"""

import struct

from google.protobuf.message import DecodeError
from google.protobuf.unknown_fields import UnknownFieldSet

from .message_pb2 import Message

__all__ = [
    "MAX_FRAME_PAYLOAD",
    "MAX_MESSAGE_PAYLOAD",
    "MAX_MESSAGE_SIZE",
    "Message",
    "MessageReader",
    "ProtocolError",
    "encode",
]

# The guides' limits: a WebSocket frame's payload, a message's payload field, and what a 2-byte length
# prefix can express.
MAX_FRAME_PAYLOAD = 131_076
MAX_MESSAGE_PAYLOAD = 64_512
MAX_MESSAGE_SIZE = 0xFFFF
_LENGTH = struct.Struct(">H")


class ProtocolError(ValueError):
    """The peer broke the protocol; the guides' answer is to close that connection."""


def encode(message: Message) -> bytes:
    """The message with its length prefix, ready to be put in a binary frame."""
    body = message.SerializeToString()
    if len(message.payload) > MAX_MESSAGE_PAYLOAD:
        raise ProtocolError(f"payload of {len(message.payload)} bytes exceeds {MAX_MESSAGE_PAYLOAD}")
    return _LENGTH.pack(len(body)) + body


class MessageReader:
    """Turns the bytes of successive frames into messages, keeping a partial message for the next feed."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes held of a message not yet complete."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Message]:
        """The messages completed by ``data``; raises ``ProtocolError`` for a message the guides forbid."""
        return self.feed_wire(data)[0]

    def feed_wire(self, data: bytes) -> tuple[list[Message], bytes, list[int]]:
        """Like ``feed``, plus the completed messages' bytes as received (length prefixes included) and
        the offset where each message ends in them: what a relay forwards without re-encoding.

        >>> wire = encode(Message(type=Message.DATA, streamId=1, payload=b"a")) * 2
        >>> messages, raw, ends = MessageReader().feed_wire(wire)
        >>> len(messages), raw == wire, ends
        (2, True, [9, 18])
        """
        buffer = self._buffer
        # Without a partial message held, parse ``data`` where it lies: a frame of whole messages is then
        # never copied.
        source: bytes | bytearray = data
        if buffer:
            buffer += data
            source = buffer
        view = memoryview(source)
        messages: list[Message] = []
        ends: list[int] = []
        offset = 0
        end = len(view)
        while end - offset >= _LENGTH.size:
            (size,) = _LENGTH.unpack_from(view, offset)
            start = offset + _LENGTH.size
            if end - start < size:
                break
            messages.append(_decode(view[start : start + size]))
            offset = start + size
            ends.append(offset)
        if source is data:
            raw = data if offset == end else bytes(view[:offset])
            view.release()
            buffer += data[offset:]
        else:
            raw = bytes(view[:offset])
            view.release()
            del buffer[:offset]
        return messages, raw, ends


def _decode(body: bytes | memoryview) -> Message:
    message = Message()
    try:
        # upb parses any buffer; the stubs say bytes only, and copying a 64 KB payload to please them costs.
        message.ParseFromString(body)  # type: ignore[arg-type]
    except DecodeError as error:
        raise ProtocolError(f"undecodable message: {error}") from None
    # The service closes a connection that sends fields it does not know (V3 guide, "Message format").
    if len(UnknownFieldSet(message)):
        raise ProtocolError("message has unknown fields")
    if len(message.payload) > MAX_MESSAGE_PAYLOAD:
        raise ProtocolError(f"payload of {len(message.payload)} bytes exceeds {MAX_MESSAGE_PAYLOAD}")
    return message
