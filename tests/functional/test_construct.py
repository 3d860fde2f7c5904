"""Fine-grained checks of what SecureTunnel puts in the template."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk import App, Duration, Stack, Tags
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_kms as kms
from aws_cdk.assertions import Match, Template
from cdk_secure_tunnel import SecureTunnel
from support.templates import dependencies, handler_statements, synth, tunnel_properties
from tunnel_lambda.tunnel_spec import TunnelSpec


def test_defaults() -> None:
    template = synth(lambda stack: SecureTunnel(stack, "Tunnel"))
    source_secret, destination_secret = template.find_resources("AWS::SecretsManager::Secret")
    properties = tunnel_properties(template)
    service_token = properties.pop("ServiceToken")
    assert "framework" in service_token["Fn::GetAtt"][0]
    # The defaults are written: the template says what the tunnel is (see the next test).
    assert properties == {
        "Services": ["SSH"],
        "MaxLifetimeMinutes": 720,
        "Description": "cdk-secure-tunnel Test/Tunnel",
        "SourceTokenSecretArn": {"Ref": source_secret},
        # Without a thing, nobody delivers the destination token: it gets a secret.
        "DestinationTokenSecretArn": {"Ref": destination_secret},
    }
    # CloudFormation's default DeletionPolicy and UpdateReplacePolicy, Delete, close the tunnel.
    (resource,) = template.find_resources("Custom::SecureTunnel").values()
    assert "DeletionPolicy" not in resource
    assert "UpdateReplacePolicy" not in resource


def test_the_defaults_written_are_the_handlers_defaults() -> None:
    """Templates of earlier versions left these two out when they equalled the defaults; the handler
    reads such properties as the same tunnel (an Update between the two is a no-op: test_handler)."""
    left_out = TunnelSpec.from_properties({"SourceTokenSecretArn": "arn:source"})
    properties = tunnel_properties(synth(lambda stack: SecureTunnel(stack, "Tunnel")))
    written = {key: properties[key] for key in ("Services", "MaxLifetimeMinutes")}
    spec = TunnelSpec.from_properties({"SourceTokenSecretArn": "arn:source", **written})
    assert (spec.services, spec.max_lifetime_minutes) == (left_out.services, left_out.max_lifetime_minutes)
    assert written == {"Services": ["SSH"], "MaxLifetimeMinutes": 720}


def test_default_description_names_the_stack_when_the_path_does_not() -> None:
    app = App()
    stack = Stack(app, "Support", stack_name="prod-support")
    SecureTunnel(stack, "Tunnel")
    properties = tunnel_properties(Template.from_stack(stack))
    assert properties["Description"] == "cdk-secure-tunnel Support/Tunnel in stack prod-support"


def test_thing_name_keeps_the_destination_token_out_of_secrets() -> None:
    template = synth(
        lambda stack: SecureTunnel(stack, "Tunnel", thing="pump-7", max_lifetime=Duration.hours(2))
    )
    properties = tunnel_properties(template)
    assert properties["ThingName"] == "pump-7"
    assert properties["MaxLifetimeMinutes"] == 120
    assert "DestinationTokenSecretArn" not in properties
    template.resource_count_is("AWS::SecretsManager::Secret", 1)


def test_destination_token_secret_on_request() -> None:
    def build(stack: Stack) -> None:
        tunnel = SecureTunnel(stack, "Tunnel", thing="pump-7", store_destination_token=True)
        assert tunnel.destination_token_secret is not None

    template = synth(build)
    assert "DestinationTokenSecretArn" in tunnel_properties(template)


def test_cfn_thing_is_referenced_and_depended_on() -> None:
    def build(stack: Stack) -> None:
        thing = iot.CfnThing(stack, "Thing", thing_name="gateway-12")
        SecureTunnel(stack, "Tunnel", thing=thing)

    template = synth(build)
    (thing_id,) = template.find_resources("AWS::IoT::Thing")
    assert tunnel_properties(template)["ThingName"] == {"Ref": thing_id}
    (tunnel,) = template.find_resources("Custom::SecureTunnel").values()
    assert thing_id in tunnel["DependsOn"]


def test_tags_from_props_and_from_tags_of_reach_the_tunnel_and_the_secrets() -> None:
    def build(stack: Stack) -> None:
        SecureTunnel(stack, "Tunnel", tags={"team": "ops"})
        Tags.of(stack).add("environment", "dev")

    template = synth(build)
    assert tunnel_properties(template)["Tags"] == [
        {"Key": "environment", "Value": "dev"},
        {"Key": "team", "Value": "ops"},
    ]
    template.all_resources_properties(
        "AWS::SecretsManager::Secret",
        {"Tags": Match.array_with([{"Key": "cdk-secure-tunnel:stack-id", "Value": {"Ref": "AWS::StackId"}}])},
    )


def test_secrets_hold_no_value_written_in_the_template() -> None:
    template = synth(lambda stack: SecureTunnel(stack, "Tunnel"))
    # Secrets start with Secrets Manager's random placeholder until the handler writes the token.
    for secret in template.find_resources("AWS::SecretsManager::Secret").values():
        assert "SecretString" not in secret["Properties"]
        assert secret["Properties"]["Description"].startswith("cdk-secure-tunnel: ")
    assert "Outputs" not in template.to_json()


def test_attributes_and_grants() -> None:
    def build(stack: Stack) -> None:
        tunnel = SecureTunnel(stack, "Tunnel")
        role = iam.Role(stack, "Operator", assumed_by=iam.AccountRootPrincipal())
        tunnel.grant_read_source_token(role)
        tunnel.grant_read_destination_token(role)
        assert set(stack.resolve(tunnel.tunnel_id)) == {"Ref"}
        assert stack.resolve(tunnel.tunnel_arn)["Fn::GetAtt"][1] == "TunnelArn"

    template = synth(build)
    template.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "Roles": [{"Ref": Match.string_like_regexp("Operator")}],
            "PolicyDocument": {
                "Statement": [
                    {
                        "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                        "Effect": "Allow",
                        "Resource": {"Ref": Match.string_like_regexp("SourceToken")},
                    },
                    {
                        "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                        "Effect": "Allow",
                        "Resource": {"Ref": Match.string_like_regexp("DestinationToken")},
                    },
                ]
            },
        },
    )


@pytest.mark.parametrize("renew", [False, True])
def test_customer_key_encrypts_secrets_and_the_handler_may_write_and_read_them(renew: bool) -> None:
    def build(stack: Stack) -> None:
        key = kms.Key(stack, "Key", enable_key_rotation=True)
        # Two tunnels share the key, and its grant.
        SecureTunnel(stack, "Tunnel", thing="pump-7", encryption_key=key, renew=renew)
        SecureTunnel(stack, "Other", thing="pump-8", encryption_key=key)

    template = synth(build)
    (key_id,) = template.find_resources("AWS::KMS::Key")
    template.has_resource_properties(
        "AWS::SecretsManager::Secret", {"KmsKeyId": {"Fn::GetAtt": [key_id, "Arn"]}}
    )
    kms_statements = [s for s in handler_statements(template) if "kms:" in str(s["Action"])]
    # GenerateDataKey for PutSecretValue, Decrypt for GetSecretValue: with or without renewal, since an
    # update that turns renewal off takes the handler's policy first. Only through Secrets Manager.
    assert kms_statements == [
        {
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Condition": {
                "StringEquals": {
                    "kms:ViaService": {
                        "Fn::Join": ["", ["secretsmanager.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]
                    }
                }
            },
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [key_id, "Arn"]},
        }
    ]


def test_handler_may_only_call_tunnel_actions_and_use_this_stacks_secrets() -> None:
    template = synth(lambda stack: SecureTunnel(stack, "Tunnel"))
    (log_key,) = [key for key in template.find_resources("AWS::Logs::LogGroup") if "HandlerLogs" in key]
    # Writing its own log group is the only permission outside the named statements.
    assert [s for s in handler_statements(template) if "Sid" not in s] == [
        {
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [log_key, "Arn"]},
        }
    ]
    statements = {s["Sid"]: s for s in handler_statements(template) if "Sid" in s}
    # Reading secrets serves renewal, but is there without it: an update that turns renewal off applies
    # the policy before the handler updates and deletes the tunnels that renewed.
    assert set(statements) == {
        "OpenTunnelsTaggedWithThisStack",
        "ManageThisStacksTunnels",
        "NameTheThingsToNotify",
        "TagTunnelsWithTheTemplatesTags",
        "WriteThisStacksTokenSecrets",
        "ReadThisStacksTokenSecrets",
        "FindLeftoverTunnels",
    }
    secret_actions = {
        "secretsmanager:PutSecretValue",
        "secretsmanager:UpdateSecretVersionStage",
        "secretsmanager:GetSecretValue",
    }
    actions = [
        a
        for s in statements.values()
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    ]
    assert all(action.startswith("iot:") for action in actions if action not in secret_actions)
    assert statements["OpenTunnelsTaggedWithThisStack"]["Condition"] == {
        "StringEquals": {"aws:RequestTag/cdk-secure-tunnel:stack-id": {"Ref": "AWS::StackId"}}
    }
    for sid in ("WriteThisStacksTokenSecrets", "ReadThisStacksTokenSecrets"):
        assert statements[sid]["Condition"] == {
            "StringEquals": {"aws:ResourceTag/cdk-secure-tunnel:stack-id": {"Ref": "AWS::StackId"}}
        }


def test_one_handler_and_a_fixed_size_policy_for_150_tunnels() -> None:
    one = synth(lambda stack: SecureTunnel(stack, "Tunnel"))

    def many(stack: Stack) -> None:
        for index in range(150):
            SecureTunnel(stack, f"Tunnel{index}", thing=f"device-{index}")

    template = synth(many)
    template.resource_count_is("Custom::SecureTunnel", 150)
    # The handler, the provider framework and the rotation function, however many tunnels there are.
    template.resource_count_is("AWS::Lambda::Function", 3)
    assert handler_statements(template) == handler_statements(one)
    assert len(template.to_json()["Resources"]) <= 500  # CloudFormation's limit per stack


def test_handler_runs_python_with_a_bounded_timeout() -> None:
    template = synth(lambda stack: SecureTunnel(stack, "Tunnel"))
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "tunnel_lambda.custom_resource.on_event",
            "Runtime": Match.string_like_regexp("python3"),
            "Timeout": 600,
        },
    )


@pytest.mark.parametrize("thing", ["pump-7", None])
def test_resource_comes_after_the_handler_policy_without_depends_on(thing: str | None) -> None:
    template = synth(lambda stack: SecureTunnel(stack, "Tunnel", thing=thing))
    ((tunnel_id, tunnel),) = template.find_resources("Custom::SecureTunnel").items()
    assert "DependsOn" not in tunnel
    # Service token -> provider framework function -> (its environment) handler -> its role and policy.
    assert any("HandlerRoleDefaultPolicy" in dependency for dependency in dependencies(template, tunnel_id))


_EVERY_OPTION_APP = """
from aws_cdk import App, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_kms as kms
from cdk_secure_tunnel import SecureTunnel

app = App(outdir={outdir!r})
stack = Stack(app, "Plant")
key = kms.Key(stack, "Key", enable_key_rotation=True)
thing = iot.CfnThing(stack, "Thing", thing_name="pump-7")
renewing = SecureTunnel(
    stack, "Renewing", thing=thing, renew=True, rotate_every=Duration.hours(8), encryption_key=key,
    max_lifetime=Duration.minutes(60), tags={{"team": "ops"}},
)
bare = SecureTunnel(stack, "Bare", services=["SSH", "RDP"], rotate_on_demand=False)
role = iam.Role(stack, "Operator", assumed_by=iam.AccountRootPrincipal())
renewing.grant_connect(role)
bare.grant_read_destination_token(role)
renewing.connect_command()
app.synth()
"""


@pytest.mark.slow
def test_synth_calls_no_deprecated_aws_cdk_api(tmp_path: Path) -> None:
    """aws-cdk-lib prints a warning for each deprecated call, and raises with JSII_DEPRECATED=fail: a user
    who sets it (or whose CI fails on warnings) must be able to synthesize every option. Node.js reads the
    variable in its own process, which the Python process starts once: hence the subprocess."""
    script = _EVERY_OPTION_APP.format(outdir=str(tmp_path / "cdk.out"))
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "JSII_DEPRECATED": "fail"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "deprecated" not in done.stderr
