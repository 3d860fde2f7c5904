"""The committed protobuf module matches message.proto, and message.proto matches the protocol guides."""

from pathlib import Path

import pytest
from cdk_secure_tunnel.protocol import Message, MessageReader, ProtocolError, encode, message_pb2
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FieldDescriptor

PROTOCOL = Path(message_pb2.__file__).parent

# The field list of V3WebSocketProtocolGuide.md ("ProtocolBuffers Message Schema"), the wire contract.
GUIDE_FIELDS = {
    "type": (1, FieldDescriptor.TYPE_ENUM, False),
    "streamId": (2, FieldDescriptor.TYPE_INT32, False),
    "ignorable": (3, FieldDescriptor.TYPE_BOOL, False),
    "payload": (4, FieldDescriptor.TYPE_BYTES, False),
    "serviceId": (5, FieldDescriptor.TYPE_STRING, False),
    "availableServiceIds": (6, FieldDescriptor.TYPE_STRING, True),
    "connectionId": (7, FieldDescriptor.TYPE_UINT32, False),
}
GUIDE_TYPES = {
    "UNKNOWN": 0,
    "DATA": 1,
    "STREAM_START": 2,
    "STREAM_RESET": 3,
    "SESSION_RESET": 4,
    "SERVICE_IDS": 5,
    "CONNECTION_START": 6,
    "CONNECTION_RESET": 7,
}


def committed_descriptor() -> descriptor_pb2.FileDescriptorProto:
    committed = descriptor_pb2.FileDescriptorProto()
    message_pb2.DESCRIPTOR.CopyToProto(committed)
    return committed


def test_the_message_has_the_guides_fields() -> None:
    descriptor = Message.DESCRIPTOR
    assert descriptor.full_name == "com.amazonaws.iot.securedtunneling.Message"
    assert committed_descriptor().syntax == "proto3"
    fields = {field.name: (field.number, field.type, field.is_repeated) for field in descriptor.fields}
    assert fields == GUIDE_FIELDS
    assert dict(Message.Type.items()) == GUIDE_TYPES


def test_the_generated_module_matches_the_proto(tmp_path: Path) -> None:
    protoc = pytest.importorskip("grpc_tools.protoc")
    descriptor_set = tmp_path / "message.pb"
    status = protoc.main(
        ["protoc", f"-I{PROTOCOL}", f"--descriptor_set_out={descriptor_set}", str(PROTOCOL / "message.proto")]
    )
    assert status == 0
    regenerated = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes()).file[0]
    # --python_out leaves out the JSON names a descriptor set carries.
    for field in regenerated.message_type[0].field:
        field.ClearField("json_name")
    assert committed_descriptor() == regenerated, "message_pb2.py is stale: run `make protocol`"


def test_a_relay_forwards_whole_frames_unchanged() -> None:
    wire = encode(Message(type=Message.STREAM_START, streamId=1)) + encode(
        Message(type=Message.DATA, streamId=1)
    )
    messages, raw, ends = MessageReader().feed_wire(wire)
    assert raw is wire
    assert ends[-1] == len(wire)
    assert [message.type for message in messages] == [Message.STREAM_START, Message.DATA]


def test_a_message_split_across_frames_is_kept_until_complete() -> None:
    reader = MessageReader()
    wire = encode(Message(type=Message.DATA, streamId=1, payload=b"abc")) * 3
    collected: list[Message] = []
    raws = b""
    for offset in range(0, len(wire), 5):
        messages, raw, _ = reader.feed_wire(wire[offset : offset + 5])
        collected += messages
        raws += raw
    assert [message.payload for message in collected] == [b"abc"] * 3
    assert raws == wire
    assert reader.pending == 0


def test_encode_refuses_an_oversized_payload() -> None:
    with pytest.raises(ProtocolError, match="exceeds 64512"):
        encode(Message(type=Message.DATA, streamId=1, payload=b"x" * 64_513))
