"""Every bad prop raises at construction, naming the parameter, the value and what is allowed."""

import re

import pytest
from aws_cdk import App, Aws, Duration, Stack, Tags, Token
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_kms as kms
from cdk_secure_tunnel import SecureTunnel
from cdk_secure_tunnel.tunnel_settings import TunnelSettings


@pytest.fixture
def stack() -> Stack:
    return Stack(App(), "Test")


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({"thing": "pump 7"}, "thing: got 'pump 7'; expected 1-128 characters of a-z"),
        ({"thing": "x" * 129}, "thing: got 'xxx"),
        ({"thing": ""}, "thing: got ''; expected 1-128"),
        ({"thing": 42}, "thing: got 42; expected a thing name or an aws_iot.CfnThing"),
        ({"services": []}, "services: got []; a tunnel carries 1 to 3 services"),
        ({"services": ["SSH", "RDP", "HTTP", "VNC"]}, "a tunnel carries 1 to 3 services"),
        ({"services": ["SSH", "SSH"]}, "services: got ['SSH', 'SSH']; each service may appear only once"),
        ({"services": ["S SH"]}, "services: got 'S SH'; expected 1-128 characters"),
        (
            {"max_lifetime": Duration.minutes(721)},
            "max_lifetime: got '12 hours 1 minute'; expected whole minutes from 1 to 720",
        ),
        ({"max_lifetime": Duration.seconds(30)}, "max_lifetime: got '30 seconds'"),
        ({"max_lifetime": Duration.seconds(90)}, "max_lifetime: got '1 minute 30 seconds'"),
        ({"max_lifetime": Duration.days(1)}, "max_lifetime: got '1 day'"),
        (
            {"description": ""},
            "description: got ''; expected 1 to 2048 characters without control characters",
        ),
        ({"description": "line\nbreak"}, "description: got 'line\\nbreak'"),
        ({"description": "x" * 2049}, "description: got 'xxx"),
        (
            {"tags": {"aws:owner": "me"}},
            "tags key: got 'aws:owner'; keys starting with aws: or cdk-secure-tunnel: are reserved",
        ),
        ({"tags": {"cdk-secure-tunnel:stack-id": "x"}}, "are reserved"),
        ({"tags": {"": "x"}}, "tags key: got ''; expected 1-128 letters"),
        ({"tags": {"team!": "x"}}, "tags key: got 'team!'"),
        ({"tags": {"team": "a;b"}}, "tags value of 'team': got 'a;b'; expected 0-256"),
        (
            {"tags": {f"k{i}": "v" for i in range(196)}},
            "tags: got '196 tags'; a tunnel takes at most 195 tags of yours",
        ),
        # A string is a sequence: list("VNC") would be three services.
        (
            {"services": "VNC"},
            "services: got 'VNC'; expected a list of 1 to 3 service names, e.g. ['VNC'], not a string",
        ),
        ({"services": 22}, "services: got 22; expected a list of 1 to 3 service names"),
        # bytes are a sequence of ints: b"SSH" would be the services 83, 83 and 72.
        (
            {"services": b"SSH"},
            "services: got b'SSH'; expected a list of 1 to 3 service names, e.g. ['SSH'], not bytes",
        ),
        ({"services": bytearray(b"RDP")}, "services: got bytearray(b'RDP'); expected a list of 1 to 3"),
        ({"services": [None]}, "services: got None; expected 1-128 characters of a-z"),
        ({"services": ["SSH", 22]}, "services: got 22; expected 1-128 characters"),
        ({"tags": {"team": 5}}, "tags value of 'team': got 5; expected a string of 0-256 letters"),
        ({"tags": {5: "x"}}, "tags key: got 5; expected 1-128 letters"),
        ({"tags": ["team"]}, "tags: got ['team']; expected a mapping of tag keys to values"),
        ({"max_lifetime": 60}, "max_lifetime: got 60; expected a Duration, e.g. Duration.minutes(60)"),
        ({"rotate_every": 8}, "rotate_every: got 8; expected a Duration, e.g. Duration.hours(8)"),
        ({"description": 5}, "description: got 5; expected a string of 1 to 2048 characters"),
        # "false" is a true value: renewal would be on.
        ({"renew": "false"}, "renew: got 'false'; expected True or False"),
        ({"rotate_on_demand": 0}, "rotate_on_demand: got 0; expected True or False"),
        ({"store_destination_token": "yes"}, "store_destination_token: got 'yes'; expected True or False"),
        # Without a thing only the secret delivers the destination token: nothing could connect the device.
        (
            {"store_destination_token": False},
            "store_destination_token: got False without a thing; the destination token then reaches no "
            "device (only a thing's device gets it from AWS IoT): leave it unset or pass a thing",
        ),
    ],
)
def test_bad_props_raise_at_construction(stack: Stack, props: dict[str, object], message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=re.escape(message)):
        SecureTunnel(stack, "Tunnel", **props)  # type: ignore[arg-type]


def test_unresolved_tokens_pass_unchecked(stack: Stack) -> None:
    SecureTunnel(
        stack,
        "Tunnel",
        thing=Token.as_string({"Ref": "ThingName"}),
        services=Token.as_list({"Ref": "Services"}),
        description=Token.as_string({"Ref": "Description"}),
        tags={"team": Token.as_string({"Ref": "Team"})},
    )


def test_limits_themselves_are_accepted(stack: Stack) -> None:
    SecureTunnel(
        stack,
        "Tunnel",
        thing="a:b_c-D9" + "x" * 120,
        services=["SSH", "RDP", "HTTP"],
        max_lifetime=Duration.minutes(1),
        description="Ünïcode and spaces are fine " + "x" * 2000,
        tags={"Kostenstelle äö": "", **{f"k{i}": "v" for i in range(194)}},
    )
    SecureTunnel(stack, "Longest", max_lifetime=Duration.hours(12))


def test_tags_added_by_tags_of_are_checked_at_synth() -> None:
    app = App()
    stack = Stack(app, "Test")
    SecureTunnel(stack, "Other", tags={"owner": "ops"})
    SecureTunnel(stack, "Tunnel")
    Tags.of(stack).add("team", "a;b")
    with pytest.raises(RuntimeError, match=re.escape("Test/Tunnel: Tags.of(...) value of 'team': got 'a;b'")):
        app.synth()


def test_tokens_added_by_tags_of_pass_at_synth() -> None:
    app = App()
    stack = Stack(app, "Test")
    SecureTunnel(stack, "Tunnel")
    SecureTunnel(stack, "Tagged", tags={"team": "ops"})
    Tags.of(stack).add("region", Aws.REGION)
    Tags.of(stack).add(Token.as_string({"Ref": "KeyParameter"}), "value")
    app.synth()


def test_destination_token_grant_without_a_secret_explains_why(stack: Stack) -> None:
    tunnel = SecureTunnel(stack, "Tunnel", thing="pump-7")
    role = iam.Role(stack, "Role", assumed_by=iam.AccountRootPrincipal())
    with pytest.raises(
        ValueError, match="stores no destination token, because AWS IoT delivers it to the thing"
    ):
        tunnel.grant_read_destination_token(role)


def test_an_alias_imported_by_name_is_refused(stack: Stack) -> None:
    """Its grants reach no key: every Create would fail to write the token secrets at deploy."""
    alias = kms.Alias.from_alias_name(stack, "Alias", "alias/tunnel-tokens")
    message = (
        "encryption_key: got the alias 'alias/tunnel-tokens' imported by name (kms.Alias.from_alias_name)"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        SecureTunnel(stack, "Tunnel", encryption_key=alias)


def test_an_alias_whose_key_is_known_is_accepted(stack: Stack) -> None:
    key = kms.Key(stack, "Key", enable_key_rotation=True)
    SecureTunnel(
        stack, "Own", encryption_key=kms.Alias(stack, "Alias", alias_name="alias/own", target_key=key)
    )
    imported = kms.Alias.from_alias_attributes(
        stack, "Imported", alias_name="alias/imported", alias_target_key=key
    )
    SecureTunnel(stack, "WithImportedAlias", encryption_key=imported)


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({"thing": 42}, "thing: got 42; expected a thing name or an aws_iot.CfnThing"),
        ({"thing": "pump 7"}, "thing: got 'pump 7'; expected 1-128 characters of a-z"),
        (
            {"encryption_key": "alias/tunnel-tokens"},
            "encryption_key: got 'alias/tunnel-tokens'; expected a kms.IKey",
        ),
    ],
)
def test_the_settings_hold_every_check(props: dict[str, object], message: str) -> None:
    """SecureTunnel wires; TunnelSettings.from_props checks every prop, the thing and the key included."""
    with pytest.raises((ValueError, TypeError), match=re.escape(message)):
        TunnelSettings.from_props(default_description=lambda: "Tunnel", **props)  # type: ignore[arg-type]


def test_the_settings_refuse_an_alias_imported_by_name(stack: Stack) -> None:
    alias = kms.Alias.from_alias_name(stack, "Alias", "alias/tunnel-tokens")
    with pytest.raises(ValueError, match=re.escape("encryption_key: got the alias 'alias/tunnel-tokens'")):
        TunnelSettings.from_props(default_description=lambda: "Tunnel", encryption_key=alias)


def test_the_settings_let_a_thing_token_through(stack: Stack) -> None:
    thing = iot.CfnThing(stack, "Thing", thing_name="pump-7")
    assert (
        TunnelSettings.from_props(default_description=lambda: "Tunnel", thing=thing).thing_name == thing.ref
    )
    name = Token.as_string({"Ref": "ThingName"})
    assert TunnelSettings.from_props(default_description=lambda: "Tunnel", thing=name).thing_name == name
