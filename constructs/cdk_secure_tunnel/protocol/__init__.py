"""The secure tunneling data plane protocol, shared by the local proxy and the emulator (no CDK imports).

- ``handshake``: the WebSocket upgrade's path, headers, subprotocols and endpoints.
- ``framing``: messages on the wire (2-byte length, then a protobuf ``Message``) and their limits.

>>> from cdk_secure_tunnel.protocol import Message, MessageReader, encode
>>> wire = encode(Message(type=Message.DATA, streamId=1, serviceId="SSH", connectionId=1, payload=b"hi"))
>>> [m.payload for m in MessageReader().feed(wire[:3]) + MessageReader().feed(wire)]
[b'hi']
"""

from .framing import (
    MAX_FRAME_PAYLOAD,
    MAX_MESSAGE_PAYLOAD,
    MAX_MESSAGE_SIZE,
    Message,
    MessageReader,
    ProtocolError,
    encode,
    payload_encoder,
)

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
