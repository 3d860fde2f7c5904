"""The local proxy's settings: service mappings, endpoints, retry delays, and the token kept out of sight."""

import pytest
from cdk_secure_tunnel.localproxy import (
    ConfigurationError,
    ProxySettings,
    RetryPolicy,
    Target,
    data_endpoint,
    parse_services,
    resolve_services,
)
from cdk_secure_tunnel.localproxy.errors import ServiceMismatch


def test_mappings_in_the_reference_proxys_syntax() -> None:
    assert parse_services("SSH=5555, HTTP=10.0.0.1:80") == {
        "SSH": Target(None, 5555),
        "HTTP": Target("10.0.0.1", 80),
    }
    assert parse_services("22") == {"": Target(None, 22)}
    assert parse_services("[::1]:22") == {"": Target("::1", 22)}
    assert parse_services("SSH=0", allow_zero=True) == {"SSH": Target(None, 0)}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "expected NAME=PORT"),
        ("SSH=70000", "from 1 to 65535"),
        ("SSH=0", "from 1 to 65535"),
        ("5555,6666", "each needs its name"),
        ("SSH=1,SSH=2", "'SSH' twice"),
        ("S H=22", "1-128 characters"),
        ("SSH=:22", "a host before the colon"),
    ],
)
def test_bad_mappings_name_the_value_and_what_is_allowed(text: str, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        parse_services(text)


def test_endpoint_precedence_explicit_then_emulator_variable_then_region() -> None:
    env = {"CDK_SECURE_TUNNEL_DATA_ENDPOINT": "ws://127.0.0.1:9000", "AWSIOT_TUNNEL_REGION": "eu-west-1"}
    assert data_endpoint(endpoint="wss://proxy.example:443/", region="us-east-1", environ=env) == (
        "wss://proxy.example:443"
    )
    assert data_endpoint(region="us-east-1", environ=env) == "ws://127.0.0.1:9000"
    assert (
        data_endpoint(region="us-east-1", environ={})
        == "wss://data.tunneling.iot.us-east-1.amazonaws.com:443"
    )
    assert data_endpoint(environ={"AWSIOT_TUNNEL_REGION": "cn-northwest-1", "AWS_REGION": "eu-west-1"}) == (
        "wss://data.tunneling.iot.cn-northwest-1.amazonaws.com.cn:443"
    )
    assert data_endpoint(environ={"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-east-1"}) == (
        "wss://data.tunneling.iot.eu-west-1.amazonaws.com:443"
    )
    assert data_endpoint(environ={"AWS_DEFAULT_REGION": "us-east-1"}) == (
        "wss://data.tunneling.iot.us-east-1.amazonaws.com:443"
    )
    with pytest.raises(ConfigurationError, match="neither a region nor an endpoint"):
        data_endpoint(environ={})
    with pytest.raises(ConfigurationError, match="expected a region name"):
        data_endpoint(region="mars", environ={})
    with pytest.raises(ConfigurationError, match="expected wss://"):
        data_endpoint(endpoint="http://x", environ={})


def test_backoff_doubles_to_its_cap_with_jitter_between_half_and_all() -> None:
    policy = RetryPolicy(initial=1.0, maximum=8.0)
    assert [policy.delay(attempt, 0.999999) for attempt in (1, 2, 3, 4, 5)] == pytest.approx([1, 2, 4, 8, 8])
    assert [policy.delay(attempt, 0.0) for attempt in (1, 2, 5)] == [0.5, 1.0, 4.0]


def test_destination_client_type_in_the_reference_proxys_words() -> None:
    settings = ProxySettings(mode="source", access_token="t", endpoint="ws://x", destination_client_type="V1")
    assert settings.version == 1
    with pytest.raises(ConfigurationError, match="a source takes V1, V2 or V3"):
        ProxySettings(
            mode="destination",
            access_token="t",
            endpoint="ws://x",
            services={"": Target(None, 22)},
            destination_client_type="V1",
        )


def test_the_token_stays_out_of_repr() -> None:
    settings = ProxySettings(mode="source", access_token="SECRET-TOKEN", endpoint="ws://x")
    assert "SECRET-TOKEN" not in repr(settings)
    assert settings.client_token is not None
    assert len(settings.client_token) == 36


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"mode": "sideways"}, "mode: got 'sideways'"),
        ({"access_token": ""}, "access token: none given"),
        ({"client_token": "short"}, "client token: expected 32-128"),
        ({"mode": "destination"}, "a destination needs where each service goes"),
        ({"version": 1, "services": {"A": Target(None, 1), "B": Target(None, 2)}}, "V1, which carries one"),
    ],
)
def test_bad_settings_are_refused(changes: dict[str, object], says: str) -> None:
    values: dict[str, object] = {"mode": "source", "access_token": "t", "endpoint": "ws://x"} | changes
    with pytest.raises(ConfigurationError, match=says):
        ProxySettings(**values)  # type: ignore[arg-type]


def test_services_are_matched_to_what_the_tunnel_announces() -> None:
    assert resolve_services("destination", {"": Target(None, 22)}, ["SSH"]) == {"SSH": Target(None, 22)}
    assert resolve_services("source", {}, ["SSH", "HTTP"]) == {
        "SSH": Target(None, 0),
        "HTTP": Target(None, 0),
    }
    assert resolve_services("destination", {"SSH": Target(None, 22), "VNC": Target(None, 5900)}, ["SSH"]) == {
        "SSH": Target(None, 22)
    }
    with pytest.raises(ServiceMismatch, match="got RDP, but the tunnel carries SSH"):
        resolve_services("source", {"RDP": Target(None, 3389)}, ["SSH"])
    with pytest.raises(ServiceMismatch, match="no destination for HTTP"):
        resolve_services("destination", {"SSH": Target(None, 22)}, ["SSH", "HTTP"])
