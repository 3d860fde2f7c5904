"""Messages on the wire: each is a 2-byte big-endian length, then a protobuf ``Message`` of that length.

Messages need not line up with WebSocket frames (V3WebSocketProtocolGuide.md, "Tunneling Data"): a frame
may carry several messages or part of one, so a reader keeps what is left over for the next frame.

>>> reader = MessageReader()
>>> wire = encode(Message(type=Message.STREAM_START, streamId=1, serviceId="SSH", connectionId=1))
>>> reader.feed(wire[:4]), [m.serviceId for m in reader.feed(wire[4:])]
([], ['SSH'])
"""

import struct
from collections.abc import Callable

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
    "payload_encoder",
]

# The guides' limits: a WebSocket frame's payload, a message's payload field, and what a 2-byte length
# prefix can express.
MAX_FRAME_PAYLOAD = 131_076
MAX_MESSAGE_PAYLOAD = 64_512
MAX_MESSAGE_SIZE = 0xFFFF
_LENGTH = struct.Struct(">H")
# Field 4 (payload), wire type 2 (length-delimited).
_PAYLOAD_TAG = b"\x22"


class ProtocolError(ValueError):
    """The peer broke the protocol; the guides' answer is to close that connection.

    ``message`` is the decoded message when only its content is at fault (an oversized payload, unknown
    fields): it names the stream and connection to reset. ``None`` when the bytes do not decode at all.
    """

    def __init__(self, reason: str, message: "Message | None" = None) -> None:
        super().__init__(reason)
        self.message = message


def encode(message: Message) -> bytes:
    """The message with its length prefix, ready to be put in a binary frame."""
    body = message.SerializeToString()
    if len(message.payload) > MAX_MESSAGE_PAYLOAD:
        raise ProtocolError(f"payload of {len(message.payload)} bytes exceeds {MAX_MESSAGE_PAYLOAD}")
    return _LENGTH.pack(len(body)) + body


def payload_encoder(template: Message) -> Callable[[bytes], bytes]:
    """``encode`` for messages that differ from ``template`` only in their payload (one connection's
    DATA), without building a ``Message`` per payload: the template's fields, then the payload field.
    Protobuf readers take fields in any order, so this parses as the message ``encode`` would give.

    >>> template = Message(type=Message.DATA, streamId=3, serviceId="SSH", connectionId=2)
    >>> wire = payload_encoder(template)(b"ping")
    >>> (message,) = MessageReader().feed(wire)
    >>> message.payload, message.streamId, message.connectionId
    (b'ping', 3, 2)
    """
    head = template.SerializeToString()

    def encode_payload(payload: bytes) -> bytes:
        size = len(payload)
        if size > MAX_MESSAGE_PAYLOAD:
            raise ProtocolError(f"payload of {size} bytes exceeds {MAX_MESSAGE_PAYLOAD}")
        field = _PAYLOAD_TAG + _varint(size)
        return b"".join((_LENGTH.pack(len(head) + len(field) + size), head, field, payload))

    return encode_payload


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class MessageReader:
    """Turns the bytes of successive frames into messages, keeping a partial message for the next feed."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes held of a message not yet complete."""
        return len(self._buffer)

    def feed(self, data: bytes, errors: list[ProtocolError] | None = None) -> list[Message]:
        """The messages completed by ``data``; raises ``ProtocolError`` for a message the guides forbid.

        With an ``errors`` list, a bad message is skipped instead (its length prefix still delimits it)
        and its error appended, so one bad message costs only what it names, not the whole connection.
        """
        return self.feed_wire(data, errors)[0]

    def feed_wire(
        self, data: bytes, errors: list[ProtocolError] | None = None
    ) -> tuple[list[Message], bytes, list[int]]:
        """Like ``feed``, plus the completed messages' bytes as received (length prefixes included) and
        the offset where each message ends in them: what a relay forwards without re-encoding. (A message
        skipped into ``errors`` stays in those bytes, without an end of its own.)

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
            offset = start + size
            try:
                messages.append(_decode(view[start:offset]))
            except ProtocolError as error:
                if errors is None:
                    raise
                errors.append(error)
                continue
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
        raise ProtocolError("message has unknown fields", message)
    if len(message.payload) > MAX_MESSAGE_PAYLOAD:
        raise ProtocolError(f"payload of {len(message.payload)} bytes exceeds {MAX_MESSAGE_PAYLOAD}", message)
    return message
