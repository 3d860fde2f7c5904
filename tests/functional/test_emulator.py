"""The tunnel emulator against an unmodified boto3 client, compared with botocore's model of the service.

Every operation and every modeled error botocore knows for AWS IoT Secure Tunneling is exercised over the
wire (the coverage tests fail when a model update adds one), and every raw response is checked to carry
only members the model defines.
"""

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import boto3
import botocore.session
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.model import ListShape, Shape, StructureShape
from cdk_secure_tunnel.protocol.handshake import SUBPROTOCOL_V3
from cdk_secure_tunnel.testing import LocalAws, ManualClock, TunnelEmulator
from support.processes import read_lines
from tunnel_lambda.contract import DEFAULT_LIFETIME_MINUTES
from websockets.sync.client import connect
from websockets.typing import Subprotocol

MODEL = botocore.session.get_session().get_service_model("iotsecuretunneling")
# max_attempts counts retries; total_max_attempts counts the first attempt too.
NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})
TUNNEL_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
UNKNOWN_ARN = f"arn:aws:iot:us-east-1:123456789012:tunnel/{UNKNOWN_ID}"
PUMP = {"thingName": "pump-7", "services": ["SSH"]}


def assert_modeled(shape: Shape | None, value: Any, path: str = "") -> None:
    """The raw JSON holds only members of ``shape``, with timestamps as epoch seconds."""
    if isinstance(shape, StructureShape):
        assert isinstance(value, dict), path
        assert set(value) <= set(shape.members), f"{path}: {set(value) - set(shape.members)} not in the model"
        for name, item in value.items():
            assert_modeled(shape.members[name], item, f"{path}.{name}")
    elif isinstance(shape, ListShape):
        assert isinstance(value, list), path
        for item in value:
            assert_modeled(shape.member, item, path)
    elif shape is not None and shape.type_name == "timestamp":
        assert isinstance(value, float), path


def tunneling_client(config: Config = NO_RETRIES, region: str | None = None) -> Any:
    client = boto3.client("iotsecuretunneling", config=config, region_name=region)

    def check_raw_response(http_response: Any, model: Any, **_: Any) -> None:
        if http_response.status_code == 200:
            assert_modeled(model.output_shape, json.loads(http_response.content), model.name)

    client.meta.events.register("after-call.iotsecuretunneling", check_raw_response)
    return client


@pytest.fixture
def client(local_aws: LocalAws) -> Any:
    return tunneling_client()


@pytest.fixture
def unchecked(local_aws: LocalAws) -> Any:
    """A client that sends what it is given, so the emulator's own validation answers."""
    return tunneling_client(NO_RETRIES.merge(Config(parameter_validation=False)))


@pytest.fixture
def clock(tunnel_emulator: TunnelEmulator) -> ManualClock:
    assert isinstance(tunnel_emulator.clock, ManualClock)
    return tunnel_emulator.clock


def open_tunnel(client: Any, **arguments: Any) -> dict[str, Any]:
    return client.open_tunnel(**{"destinationConfig": PUMP, **arguments})  # type: ignore[no-any-return]


def describe(client: Any, tunnel_id: str) -> dict[str, Any]:
    return client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]  # type: ignore[no-any-return]


def error_code(error: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = error.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


# -- every operation, and every modeled error, through boto3 -------------------------------------------------


def _open(client: Any, emulator: TunnelEmulator) -> None:
    response = open_tunnel(client, description="maintenance", tags=[{"key": "team", "value": "ops"}])
    assert TUNNEL_ID.match(response["tunnelId"])
    assert response["tunnelArn"] == f"arn:aws:iot:us-east-1:123456789012:tunnel/{response['tunnelId']}"
    assert response["sourceAccessToken"] != response["destinationAccessToken"]
    for token in (response["sourceAccessToken"], response["destinationAccessToken"]):
        assert re.fullmatch(r"[A-Za-z0-9_-]{600}", token)


def _close(client: Any, emulator: TunnelEmulator) -> None:
    tunnel_id = open_tunnel(client)["tunnelId"]
    client.close_tunnel(tunnelId=tunnel_id)
    assert describe(client, tunnel_id)["status"] == "CLOSED"
    client.close_tunnel(tunnelId=tunnel_id)  # closing a closed tunnel is not an error


def _describe(client: Any, emulator: TunnelEmulator) -> None:
    opened = open_tunnel(client, description="maintenance", tags=[{"key": "team", "value": "ops"}])
    tunnel = describe(client, opened["tunnelId"])
    assert tunnel["tunnelArn"] == opened["tunnelArn"]
    assert tunnel["status"] == "OPEN"
    assert tunnel["description"] == "maintenance"
    assert tunnel["destinationConfig"] == PUMP
    assert tunnel["timeoutConfig"] == {"maxLifetimeTimeoutMinutes": DEFAULT_LIFETIME_MINUTES}
    assert tunnel["tags"] == [{"key": "team", "value": "ops"}]
    assert tunnel["sourceConnectionState"]["status"] == "DISCONNECTED"
    assert tunnel["destinationConnectionState"]["lastUpdatedAt"] == tunnel["createdAt"]
    assert tunnel["createdAt"].timestamp() == pytest.approx(emulator.clock.now())
    assert tunnel["lastUpdatedAt"] == tunnel["createdAt"]


def _list(client: Any, emulator: TunnelEmulator) -> None:
    opened = open_tunnel(client, description="maintenance")
    (summary,) = client.list_tunnels()["tunnelSummaries"]
    assert summary["tunnelId"] == opened["tunnelId"]
    assert set(summary) == {"tunnelId", "tunnelArn", "status", "description", "createdAt", "lastUpdatedAt"}


def _rotate(client: Any, emulator: TunnelEmulator) -> None:
    opened = open_tunnel(client)
    rotated = client.rotate_tunnel_access_token(tunnelId=opened["tunnelId"], clientMode="ALL")
    assert rotated["tunnelArn"] == opened["tunnelArn"]
    assert rotated["sourceAccessToken"] != opened["sourceAccessToken"]


def _tag(client: Any, emulator: TunnelEmulator) -> None:
    arn = open_tunnel(client, tags=[{"key": "a", "value": "1"}])["tunnelArn"]
    client.tag_resource(resourceArn=arn, tags=[{"key": "a", "value": "2"}, {"key": "b", "value": ""}])
    assert client.list_tags_for_resource(resourceArn=arn)["tags"] == [
        {"key": "a", "value": "2"},
        {"key": "b", "value": ""},
    ]


def _untag(client: Any, emulator: TunnelEmulator) -> None:
    arn = open_tunnel(client, tags=[{"key": "a", "value": "1"}, {"key": "b", "value": "2"}])["tunnelArn"]
    client.untag_resource(resourceArn=arn, tagKeys=["a", "never-set"])
    assert client.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "b", "value": "2"}]


def _list_tags(client: Any, emulator: TunnelEmulator) -> None:
    arn = open_tunnel(client)["tunnelArn"]
    assert client.list_tags_for_resource(resourceArn=arn)["tags"] == []


OPERATIONS: dict[str, Callable[[Any, TunnelEmulator], None]] = {
    "OpenTunnel": _open,
    "CloseTunnel": _close,
    "DescribeTunnel": _describe,
    "ListTunnels": _list,
    "RotateTunnelAccessToken": _rotate,
    "TagResource": _tag,
    "UntagResource": _untag,
    "ListTagsForResource": _list_tags,
}


def _no_room(client: Any, emulator: TunnelEmulator) -> None:
    emulator.max_open_tunnels = 0
    open_tunnel(client)


MODELED_ERRORS: dict[tuple[str, str], Callable[[Any, TunnelEmulator], object]] = {
    ("OpenTunnel", "LimitExceededException"): _no_room,
    ("CloseTunnel", "ResourceNotFoundException"): lambda c, _: c.close_tunnel(tunnelId=UNKNOWN_ID),
    ("DescribeTunnel", "ResourceNotFoundException"): lambda c, _: c.describe_tunnel(tunnelId=UNKNOWN_ID),
    ("RotateTunnelAccessToken", "ResourceNotFoundException"): lambda c, _: c.rotate_tunnel_access_token(
        tunnelId=UNKNOWN_ID, clientMode="SOURCE"
    ),
    ("TagResource", "ResourceNotFoundException"): lambda c, _: c.tag_resource(
        resourceArn=UNKNOWN_ARN, tags=[{"key": "a", "value": "b"}]
    ),
    ("UntagResource", "ResourceNotFoundException"): lambda c, _: c.untag_resource(
        resourceArn=UNKNOWN_ARN, tagKeys=["a"]
    ),
    ("ListTagsForResource", "ResourceNotFoundException"): lambda c, _: c.list_tags_for_resource(
        resourceArn=UNKNOWN_ARN
    ),
}


def test_the_tables_cover_every_operation_and_modeled_error() -> None:
    assert set(OPERATIONS) == set(MODEL.operation_names)
    modeled = {
        (operation, shape.name)
        for operation in MODEL.operation_names
        for shape in MODEL.operation_model(operation).error_shapes
    }
    assert set(MODELED_ERRORS) == modeled


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_operation(operation: str, client: Any, tunnel_emulator: TunnelEmulator) -> None:
    OPERATIONS[operation](client, tunnel_emulator)
    assert operation in [call.operation for call in tunnel_emulator.calls]


@pytest.mark.parametrize(
    ("operation", "error"), list(MODELED_ERRORS), ids=[f"{o}-{e}" for o, e in MODELED_ERRORS]
)
def test_modeled_error(operation: str, error: str, client: Any, tunnel_emulator: TunnelEmulator) -> None:
    with pytest.raises(getattr(client.exceptions, error)) as raised:
        MODELED_ERRORS[operation, error](client, tunnel_emulator)
    assert error_code(raised) == (error, 400)
    assert raised.value.response["Error"]["Message"]


# -- the wire ------------------------------------------------------------------------------------------------


def post(endpoint: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(endpoint, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


SIGNED = {
    "Authorization": "AWS4-HMAC-SHA256 Credential=AKID/20250101/eu-west-1/IoTSecuredTunneling/aws4_request, "
    "SignedHeaders=host, Signature=0",
    "Content-Type": "application/x-amz-json-1.1",
    "X-Amz-Target": "IoTSecuredTunneling.ListTunnels",
}


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({"Authorization": None}, b"{}", (403, "MissingAuthenticationTokenException")),
        ({"X-Amz-Target": "IoTSecuredTunneling.Teleport"}, b"{}", (400, "UnknownOperationException")),
        ({"X-Amz-Target": "DynamoDB_20120810.ListTables"}, b"{}", (400, "UnknownOperationException")),
        ({"Content-Type": "application/json"}, b"{}", (400, "UnknownOperationException")),
        ({}, b"{not json", (400, "SerializationException")),
        ({}, b"[]", (400, "SerializationException")),
        ({}, b'{"maxResults": "ten"}', (400, "SerializationException")),
        ({}, b'{"maxResults": true}', (400, "SerializationException")),
    ],
    ids=[
        "unsigned",
        "unknown-operation",
        "other-service",
        "content-type",
        "bad-json",
        "not-object",
        "string-for-int",
        "bool-for-int",
    ],
)
def test_requests_aws_would_reject(
    headers: dict[str, str | None], body: bytes, expected: tuple[int, str], local_aws: LocalAws
) -> None:
    merged = {name: value for name, value in {**SIGNED, **headers}.items() if value is not None}
    status, payload = post(local_aws.tunneling_endpoint, body, merged)
    assert (status, payload["__type"]) == expected
    assert payload["message"]


def test_an_unsigned_boto3_call_is_rejected(local_aws: LocalAws) -> None:
    client = boto3.client("iotsecuretunneling", config=NO_RETRIES.merge(Config(signature_version=UNSIGNED)))
    with pytest.raises(ClientError) as raised:
        client.list_tunnels()
    assert error_code(raised) == ("MissingAuthenticationTokenException", 403)


def test_the_region_comes_from_the_credential_scope(client: Any, local_aws: LocalAws) -> None:
    ireland = tunneling_client(region="eu-west-1")
    opened = open_tunnel(ireland)
    assert opened["tunnelArn"].startswith("arn:aws:iot:eu-west-1:123456789012:tunnel/")
    # Tunnels are regional: a client of another region does not see it.
    assert client.list_tunnels()["tunnelSummaries"] == []
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.describe_tunnel(tunnelId=opened["tunnelId"])
    status, payload = post(local_aws.tunneling_endpoint, b"{}", SIGNED)
    assert status == 200
    assert [summary["tunnelId"] for summary in payload["tunnelSummaries"]] == [opened["tunnelId"]]


def test_every_call_is_logged_without_tokens(client: Any, tunnel_emulator: TunnelEmulator) -> None:
    opened = open_tunnel(client)
    rotated = client.rotate_tunnel_access_token(tunnelId=opened["tunnelId"], clientMode="ALL")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.describe_tunnel(tunnelId=UNKNOWN_ID)
    calls = tunnel_emulator.calls
    assert [operation for operation, _ in calls] == [
        "OpenTunnel",
        "RotateTunnelAccessToken",
        "DescribeTunnel",
    ]
    assert calls[0].params == {"destinationConfig": PUMP}
    logged = repr(calls)
    tokens = [opened["sourceAccessToken"], opened["destinationAccessToken"], rotated["sourceAccessToken"]]
    assert not [token for token in tokens if token in logged]


# -- validation from the model -------------------------------------------------------------------------------

LONG = "x" * 129


@pytest.mark.parametrize(
    ("operation", "params", "message"),
    [
        (
            "describe_tunnel",
            {},
            "Value null at 'tunnelId' failed to satisfy constraint: Member must not be null",
        ),
        (
            "describe_tunnel",
            {"tunnelId": "not a tunnel id!"},
            "Member must satisfy regular expression pattern",
        ),
        ("close_tunnel", {"tunnelId": "x" * 129}, "at 'tunnelId' failed to satisfy constraint"),
        ("list_tunnels", {"maxResults": 0}, "Member must have value greater than or equal to 1"),
        ("list_tunnels", {"maxResults": 101}, "Member must have value less than or equal to 100"),
        ("list_tunnels", {"thingName": LONG}, "Member must have length less than or equal to 128"),
        ("list_tunnels", {"thingName": "pump 7"}, "at 'thingName'"),
        ("list_tunnels", {"nextToken": "not/valid"}, "at 'nextToken'"),
        ("list_tunnels", {"nextToken": "bm9wZQ=="}, "The nextToken is invalid"),
        ("open_tunnel", {"description": "line\nbreak"}, "at 'description'"),
        ("open_tunnel", {"description": "zero\u200bwidth"}, "at 'description'"),  # \p{C} includes Cf
        ("open_tunnel", {"description": ""}, "at 'description'"),
        ("open_tunnel", {"destinationConfig": {"services": []}}, "at 'destinationConfig.services'"),
        ("open_tunnel", {"destinationConfig": {}}, "Value null at 'destinationConfig.services'"),
        (
            "open_tunnel",
            {"destinationConfig": {"services": ["S S"]}},
            "at 'destinationConfig.services.1.member'",
        ),
        ("open_tunnel", {"destinationConfig": {"services": ["A", "B", "C", "D"]}}, "at most 3 services"),
        ("open_tunnel", {"destinationConfig": {"services": ["SSH", "SSH"]}}, "unique"),
        ("open_tunnel", {"timeoutConfig": {"maxLifetimeTimeoutMinutes": 721}}, "less than or equal to 720"),
        ("open_tunnel", {"timeoutConfig": {"maxLifetimeTimeoutMinutes": 0}}, "greater than or equal to 1"),
        ("open_tunnel", {"tags": []}, "at 'tags' failed to satisfy constraint: Member must have length"),
        ("open_tunnel", {"tags": [{"key": "a!", "value": "b"}]}, "at 'tags.1.member.key'"),
        ("open_tunnel", {"tags": [{"key": "a"}]}, "Value null at 'tags.1.member.value'"),
        ("open_tunnel", {"tags": [{"key": "", "value": "b"}]}, "at 'tags.1.member.key'"),
        ("open_tunnel", {"tags": [{"key": "a", "value": "v" * 257}]}, "at 'tags.1.member.value'"),
        ("rotate_tunnel_access_token", {"tunnelId": UNKNOWN_ID, "clientMode": "BOTH"}, "enum value set"),
        (
            "rotate_tunnel_access_token",
            {"tunnelId": UNKNOWN_ID, "clientMode": "SOURCE", "destinationConfig": PUMP},
            "destinationConfig cannot be used with clientMode SOURCE",
        ),
        ("tag_resource", {"resourceArn": UNKNOWN_ARN, "tags": []}, "at 'tags'"),
        ("untag_resource", {"resourceArn": ""}, "Value null at 'tagKeys'"),
        ("list_tags_for_resource", {"resourceArn": "a" * 1012}, "at 'resourceArn'"),
    ],
)
def test_invalid_input_is_a_validation_exception(
    operation: str, params: dict[str, Any], message: str, unchecked: Any, tunnel_emulator: TunnelEmulator
) -> None:
    with pytest.raises(unchecked.exceptions.ClientError) as raised:
        getattr(unchecked, operation)(**params)
    assert error_code(raised) == ("ValidationException", 400)
    assert message in raised.value.response["Error"]["Message"]
    assert tunnel_emulator.tunnels() == []


def test_every_violation_is_reported_at_once(unchecked: Any) -> None:
    with pytest.raises(ClientError, match=r"2 validation errors detected: .*'tunnelId'.*'clientMode'"):
        unchecked.rotate_tunnel_access_token(clientMode="NEITHER")


def test_unicode_letters_spaces_and_numbers_are_valid_in_tags(client: Any) -> None:
    tags = [{"key": "Zürich Ωmega", "value": "٣ 東京 ½ +-=._:/@"}]
    arn = open_tunnel(client, tags=tags, description="Wartung für Pumpe 7 — ünïcode")["tunnelArn"]
    assert client.list_tags_for_resource(resourceArn=arn)["tags"] == tags


# -- listing -------------------------------------------------------------------------------------------------


def test_list_tunnels_pages_newest_first(client: Any) -> None:
    opened = [open_tunnel(client)["tunnelId"] for _ in range(5)]
    pages, token = [], None
    while True:
        response = client.list_tunnels(maxResults=2, **({"nextToken": token} if token else {}))
        pages.append([summary["tunnelId"] for summary in response["tunnelSummaries"]])
        token = response.get("nextToken")
        if token is None:
            break
    assert pages == [opened[:-3:-1], opened[2:0:-1], opened[:1]]
    # A tunnel opened while paging does not shift the later pages.
    first = client.list_tunnels(maxResults=2)
    open_tunnel(client)
    second = client.list_tunnels(maxResults=2, nextToken=first["nextToken"])
    assert [summary["tunnelId"] for summary in second["tunnelSummaries"]] == opened[2:0:-1]


def test_list_tunnels_filters_by_thing_and_includes_closed_ones(client: Any) -> None:
    pump = open_tunnel(client)["tunnelId"]
    open_tunnel(client, destinationConfig={"thingName": "pump-8", "services": ["SSH"]})
    open_tunnel(client, destinationConfig={"services": ["SSH"]})
    client.close_tunnel(tunnelId=pump)
    (summary,) = client.list_tunnels(thingName="pump-7")["tunnelSummaries"]
    assert (summary["tunnelId"], summary["status"]) == (pump, "CLOSED")
    assert len(client.list_tunnels()["tunnelSummaries"]) == 3
    assert client.list_tunnels(thingName="pump-9")["tunnelSummaries"] == []


# -- lifetime ------------------------------------------------------------------------------------------------


def test_a_tunnel_closes_when_its_lifetime_ends(client: Any, clock: ManualClock) -> None:
    tunnel_id = open_tunnel(client, timeoutConfig={"maxLifetimeTimeoutMinutes": 30})["tunnelId"]
    created = describe(client, tunnel_id)["createdAt"]
    clock.advance(minutes=29, seconds=59)
    assert describe(client, tunnel_id)["status"] == "OPEN"
    clock.advance(1)
    tunnel = describe(client, tunnel_id)
    assert tunnel["status"] == "CLOSED"
    assert (tunnel["lastUpdatedAt"] - created).total_seconds() == 30 * 60


def test_the_default_lifetime_is_twelve_hours(client: Any, clock: ManualClock, tunnel_emulator: Any) -> None:
    tunnel_id = open_tunnel(client)["tunnelId"]
    view = tunnel_emulator.tunnel(tunnel_id)
    assert (view.expires_at - view.created_at).total_seconds() == 12 * 3600
    clock.advance(hours=12)
    assert tunnel_emulator.open_tunnels() == []


def test_closed_tunnels_are_forgotten_after_three_hours(client: Any, clock: ManualClock) -> None:
    closed = open_tunnel(client)["tunnelId"]
    expiring = open_tunnel(client, timeoutConfig={"maxLifetimeTimeoutMinutes": 60})["tunnelId"]
    client.close_tunnel(tunnelId=closed)
    clock.advance(hours=3, seconds=-1)
    assert describe(client, closed)["status"] == "CLOSED"
    clock.advance(1)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        describe(client, closed)
    assert [summary["tunnelId"] for summary in client.list_tunnels()["tunnelSummaries"]] == [expiring]
    clock.advance(hours=1)  # expiring closed at 1 h and is now forgotten too
    assert client.list_tunnels()["tunnelSummaries"] == []


def test_delete_forgets_a_tunnel_at_once(client: Any, tunnel_emulator: TunnelEmulator) -> None:
    tunnel_id = open_tunnel(client)["tunnelId"]
    client.close_tunnel(tunnelId=tunnel_id, delete=True)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        describe(client, tunnel_id)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.close_tunnel(tunnelId=tunnel_id, delete=True)
    with pytest.raises(KeyError):
        tunnel_emulator.tunnel(tunnel_id)


def test_delete_also_forgets_an_already_closed_tunnel(client: Any) -> None:
    tunnel_id = open_tunnel(client)["tunnelId"]
    client.close_tunnel(tunnelId=tunnel_id)
    client.close_tunnel(tunnelId=tunnel_id, delete=True)
    assert client.list_tunnels()["tunnelSummaries"] == []


# -- tokens, rotation and notifications ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "returned"),
    [
        ("SOURCE", {"sourceAccessToken"}),
        ("DESTINATION", {"destinationAccessToken"}),
        ("ALL", {"sourceAccessToken", "destinationAccessToken"}),
    ],
)
def test_rotation_returns_and_revokes_only_the_tokens_of_its_mode(
    mode: str, returned: set[str], client: Any, tunnel_emulator: TunnelEmulator, clock: ManualClock
) -> None:
    opened = open_tunnel(client, timeoutConfig={"maxLifetimeTimeoutMinutes": 60})
    clock.advance(minutes=10)
    rotated = client.rotate_tunnel_access_token(tunnelId=opened["tunnelId"], clientMode=mode)
    assert set(rotated) - {"ResponseMetadata", "tunnelArn"} == returned
    for key in ("sourceAccessToken", "destinationAccessToken"):
        old_is_valid = tunnel_emulator.is_token_valid(opened[key])
        assert old_is_valid is (key not in returned)
        if key in returned:
            assert tunnel_emulator.is_token_valid(rotated[key])
    view = tunnel_emulator.tunnel(opened["tunnelId"])
    assert view.source_token == rotated.get("sourceAccessToken", opened["sourceAccessToken"])
    assert (view.expires_at - view.created_at).total_seconds() == 3600  # rotation never extends the life
    assert describe(client, opened["tunnelId"])["lastUpdatedAt"].timestamp() == pytest.approx(clock.now())


def test_closing_revokes_every_token(client: Any, tunnel_emulator: TunnelEmulator) -> None:
    opened = open_tunnel(client)
    client.close_tunnel(tunnelId=opened["tunnelId"])
    assert not tunnel_emulator.is_token_valid(opened["sourceAccessToken"])
    assert not tunnel_emulator.is_token_valid(opened["destinationAccessToken"])
    assert opened["sourceAccessToken"] in tunnel_emulator.tunnel(opened["tunnelId"]).revoked_tokens


def test_a_closed_tunnel_cannot_be_rotated(client: Any) -> None:
    tunnel_id = open_tunnel(client)["tunnelId"]
    client.close_tunnel(tunnelId=tunnel_id)
    with pytest.raises(client.exceptions.ResourceNotFoundException, match="is closed"):
        client.rotate_tunnel_access_token(tunnelId=tunnel_id, clientMode="ALL")


def test_the_device_is_notified_of_its_token_on_open(client: Any, tunnel_emulator: TunnelEmulator) -> None:
    opened = open_tunnel(client, destinationConfig={"thingName": "pump-7", "services": ["SSH", "HTTP"]})
    open_tunnel(client, destinationConfig={"services": ["SSH"]})  # no thing, nothing published
    assert tunnel_emulator.notifications("pump-7") == [
        {
            "clientAccessToken": opened["destinationAccessToken"],
            "clientMode": "destination",
            "region": "us-east-1",
            "services": ["SSH", "HTTP"],
        }
    ]
    assert tunnel_emulator.notifications("pump-8") == []


def test_destination_rotation_with_a_config_replaces_it_and_notifies(
    client: Any, tunnel_emulator: TunnelEmulator
) -> None:
    tunnel_id = open_tunnel(client)["tunnelId"]
    client.rotate_tunnel_access_token(tunnelId=tunnel_id, clientMode="DESTINATION")  # no config: no message
    client.rotate_tunnel_access_token(tunnelId=tunnel_id, clientMode="SOURCE")
    moved = {"thingName": "pump-8", "services": ["RDP"]}
    rotated = client.rotate_tunnel_access_token(tunnelId=tunnel_id, clientMode="ALL", destinationConfig=moved)
    assert describe(client, tunnel_id)["destinationConfig"] == moved
    assert len(tunnel_emulator.notifications("pump-7")) == 1
    (message,) = tunnel_emulator.notifications("pump-8")
    assert message["clientAccessToken"] == rotated["destinationAccessToken"]
    assert message["services"] == ["RDP"]
    assert tunnel_emulator.tunnel(tunnel_id).thing_name == "pump-8"


# -- limits and faults ---------------------------------------------------------------------------------------


def test_open_tunnel_limit_counts_open_tunnels_and_changes_at_runtime(
    client: Any, tunnel_emulator: TunnelEmulator
) -> None:
    tunnel_emulator.max_open_tunnels = 2
    first = open_tunnel(client)["tunnelId"]
    open_tunnel(client)
    with pytest.raises(client.exceptions.LimitExceededException):
        open_tunnel(client)
    client.close_tunnel(tunnelId=first)
    open_tunnel(client)
    tunnel_emulator.max_open_tunnels = None
    open_tunnel(client)
    assert len(tunnel_emulator.open_tunnels()) == 3


def test_rate_limit_throttles_one_operation(client: Any, tunnel_emulator: TunnelEmulator) -> None:
    # The bucket's time stands still: no token comes back however long the calls take to arrive.
    tunnel_emulator.limit_rate("OpenTunnel", per_second=1, monotonic=ManualClock(start=0).now)
    open_tunnel(client)
    with pytest.raises(ClientError) as raised:
        open_tunnel(client)
    assert error_code(raised) == ("ThrottlingException", 400)
    client.list_tunnels()  # other operations are not limited
    tunnel_emulator.limit_rate("OpenTunnel", per_second=None)
    open_tunnel(client)


def test_rate_limit_refills_with_time(client: Any, tunnel_emulator: TunnelEmulator) -> None:
    bucket_time = ManualClock(start=0)
    tunnel_emulator.limit_rate(None, per_second=1, burst=2, monotonic=bucket_time.now)
    client.list_tunnels()
    client.list_tunnels()
    with pytest.raises(ClientError, match="ThrottlingException"):
        client.list_tunnels()
    bucket_time.advance(0.5)  # half a token
    with pytest.raises(ClientError, match="ThrottlingException"):
        client.list_tunnels()
    bucket_time.advance(0.5)
    client.list_tunnels()
    with pytest.raises(ClientError, match="ThrottlingException"):
        client.list_tunnels()


@pytest.mark.parametrize("mode", ["legacy", "standard", "adaptive"])
def test_botocore_retries_throttling(mode: str, local_aws: LocalAws, tunnel_emulator: TunnelEmulator) -> None:
    tunnel_emulator.fail_next("ListTunnels", times=1, error="ThrottlingException")
    client = tunneling_client(Config(retries={"mode": mode, "total_max_attempts": 2}))
    response = client.list_tunnels()
    assert response["ResponseMetadata"]["RetryAttempts"] == 1
    assert [call.operation for call in tunnel_emulator.calls] == ["ListTunnels"] * 2


def test_fail_next_fails_that_many_calls_and_changes_nothing(
    client: Any, tunnel_emulator: TunnelEmulator
) -> None:
    tunnel_emulator.fail_next("OpenTunnel", times=2, error="ThrottlingException")
    for _ in range(2):
        with pytest.raises(ClientError, match="ThrottlingException"):
            open_tunnel(client)
    assert tunnel_emulator.tunnels() == []
    open_tunnel(client)


def test_fail_next_any_operation_with_a_server_error(client: Any, tunnel_emulator: TunnelEmulator) -> None:
    tunnel_emulator.fail_next(None, error="ServiceUnavailableException", message="try later")
    with pytest.raises(ClientError) as raised:
        client.list_tunnels()
    assert error_code(raised) == ("ServiceUnavailableException", 503)
    assert raised.value.response["Error"]["Message"] == "try later"
    client.list_tunnels()


def test_fail_next_with_a_modeled_error_raises_it(client: Any, tunnel_emulator: TunnelEmulator) -> None:
    tunnel_emulator.fail_next("OpenTunnel", error="LimitExceededException")
    with pytest.raises(client.exceptions.LimitExceededException):
        open_tunnel(client)


def test_faults_reject_unknown_operations(tunnel_emulator: TunnelEmulator) -> None:
    with pytest.raises(ValueError, match="OpenTunel"):
        tunnel_emulator.fail_next("OpenTunel")
    with pytest.raises(ValueError, match="OpenTunel"):
        tunnel_emulator.limit_rate("OpenTunel", per_second=1)


def test_latency_delays_every_call(client: Any, tunnel_emulator: TunnelEmulator) -> None:
    tunnel_emulator.latency = 0.2
    started = time.monotonic()
    client.list_tunnels()
    assert time.monotonic() - started >= 0.2


def test_concurrent_opens_respect_the_limit(local_aws: LocalAws, tunnel_emulator: TunnelEmulator) -> None:
    tunnel_emulator.max_open_tunnels = 5
    tunnel_emulator.latency = 0.05  # lets the requests overlap
    outcomes: list[str] = []

    def open_one() -> None:
        client = tunneling_client()
        try:
            outcomes.append(open_tunnel(client)["tunnelId"])
        except ClientError as error:
            outcomes.append(error.response["Error"]["Code"])

    threads = [threading.Thread(target=open_one) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (
        sorted(outcome for outcome in outcomes if not TUNNEL_ID.match(outcome))
        == ["LimitExceededException"] * 7
    )
    assert len({view.tunnel_id for view in tunnel_emulator.open_tunnels()}) == 5


def test_reset_forgets_everything(client: Any, tunnel_emulator: TunnelEmulator) -> None:
    tunnel_emulator.max_open_tunnels = 1
    open_tunnel(client)
    tunnel_emulator.fail_next("ListTunnels", times=5)
    tunnel_emulator.latency = 1
    tunnel_emulator.reset()
    assert client.list_tunnels()["tunnelSummaries"] == []
    assert (tunnel_emulator.notifications("pump-7"), tunnel_emulator.latency) == ([], 0)
    assert [call.operation for call in tunnel_emulator.calls] == ["ListTunnels"]
    assert tunnel_emulator.max_open_tunnels is None


def test_manual_clock_never_runs_backwards() -> None:
    clock = ManualClock(start=1000)
    assert clock.advance(minutes=1, hours=1) == 1000 + 3660
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="backwards"):
        clock.set(0)


# -- local AWS, the plugin and the command line --------------------------------------------------------------


def test_environment_points_both_clients_at_local_aws(local_aws: LocalAws) -> None:
    environment = local_aws.environment()
    assert {name: os.environ[name] for name in environment} == environment
    secrets = boto3.client("secretsmanager")
    assert secrets.meta.endpoint_url == environment["AWS_ENDPOINT_URL_SECRETS_MANAGER"]
    assert (
        boto3.client("iotsecuretunneling").meta.endpoint_url
        == environment["AWS_ENDPOINT_URL_IOTSECURETUNNELING"]
    )
    arn = secrets.create_secret(Name="token", SecretString="s3cret")["ARN"]
    assert secrets.get_secret_value(SecretId=arn)["SecretString"] == "s3cret"
    local_aws.reset()
    assert secrets.list_secrets()["SecretList"] == []


def test_the_plugin_imports_nothing_heavy() -> None:
    code = (
        "import sys, cdk_secure_tunnel.testing.pytest_plugin; "
        "heavy = [m for m in ('moto', 'botocore', 'boto3', 'aws_cdk') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_command_line_serves_until_terminated() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "cdk_secure_tunnel.testing", "--port", "0", "--region", "eu-west-1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        environment = {}
        for line in read_lines(process, until=lambda line: line.startswith("export AWS_SECRET_ACCESS_KEY=")):
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").strip().partition("=")
                environment[name] = value
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", environment["AWS_ENDPOINT_URL_IOTSECURETUNNELING"])
        session = boto3.Session(
            aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
            region_name=environment["AWS_REGION"],
        )
        tunneling = session.client(
            "iotsecuretunneling", endpoint_url=environment["AWS_ENDPOINT_URL_IOTSECURETUNNELING"]
        )
        opened = tunneling.open_tunnel()
        assert opened["tunnelArn"].startswith("arn:aws:iot:eu-west-1:")
        data_plane = environment["CDK_SECURE_TUNNEL_DATA_ENDPOINT"]
        assert re.fullmatch(r"ws://127\.0\.0\.1:\d+", data_plane)
        with connect(
            f"{data_plane}/tunnel?local-proxy-mode=source",
            subprotocols=[Subprotocol(SUBPROTOCOL_V3)],
            additional_headers={"access-token": opened["sourceAccessToken"]},
        ) as source:
            assert source.subprotocol == SUBPROTOCOL_V3
        secrets = session.client(
            "secretsmanager", endpoint_url=environment["AWS_ENDPOINT_URL_SECRETS_MANAGER"]
        )
        assert secrets.list_secrets()["SecretList"] == []
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


def test_fail_every_fails_every_other_call_until_reset(local_aws: Any, tunnel_emulator: Any) -> None:
    client = boto3.client("iotsecuretunneling", config=Config(retries={"total_max_attempts": 1}))
    tunnel_emulator.fail_every(None, every=2)
    outcomes = []
    for _ in range(4):
        try:
            client.list_tunnels()
            outcomes.append("ok")
        except ClientError as error:
            outcomes.append(error.response["Error"]["Code"])
    assert outcomes == ["ThrottlingException", "ok", "ThrottlingException", "ok"]
    tunnel_emulator.reset()
    client.list_tunnels()
