"""Finding a tunnel's secret by stack and construct path: through the secrets' tags (the e2e tests of the
command use that), and through CloudFormation's stack resources (here, against moto's CloudFormation)."""

import io
import json
import sys
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from cdk_secure_tunnel.cli import device, lookup
from cdk_secure_tunnel.localproxy import NotFound
from cdk_secure_tunnel.testing import LocalAws

SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:MaintenanceSourceToken30C10707-AbCdEf"


class _Session:
    """Real Secrets Manager (moto, where no secret has the tags); CloudFormation stubbed (moto's cannot
    create AWS::SecretsManager::Secret resources)."""

    def __init__(self, cloudformation: Any) -> None:
        self._cloudformation = cloudformation

    def client(self, name: str, **kwargs: Any) -> Any:
        return self._cloudformation if name == "cloudformation" else boto3.client(name, **kwargs)


def test_the_stack_resources_name_the_secret(local_aws: LocalAws, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDFORMATION", "http://127.0.0.1:9")  # "not offline"
    cloudformation = boto3.client("cloudformation")
    with Stubber(cloudformation) as stub:
        stub.add_response(
            "describe_stack_resource",
            {
                "StackResourceDetail": {
                    "LogicalResourceId": "MaintenanceSourceToken30C10707",
                    "PhysicalResourceId": SECRET_ARN,
                    "ResourceType": "AWS::SecretsManager::Secret",
                    "LastUpdatedTimestamp": datetime.now(UTC),
                    "ResourceStatus": "CREATE_COMPLETE",
                }
            },
            {"StackName": "Plant", "LogicalResourceId": "MaintenanceSourceToken30C10707"},
        )
        stub.add_client_error(
            "describe_stack_resource",
            "ValidationError",
            "Resource NowhereSourceTokenXXXXXXXX does not exist for stack Plant",
        )
        session = _Session(cloudformation)
        assert lookup.find_secret(session, "Plant", "Plant/Maintenance", "source") == SECRET_ARN
        with pytest.raises(NotFound, match="logical id NowhereSourceToken"):
            lookup.find_secret(session, "Plant", "Nowhere", "source")


def test_offline_without_a_cloudformation_endpoint_only_tags_are_searched(
    local_aws: LocalAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def no_cloudformation(*args: Any) -> None:
        calls.append("cloudformation")

    monkeypatch.setattr(lookup, "find_by_stack_resources", no_cloudformation)
    with pytest.raises(NotFound):
        lookup.find_secret(boto3.session.Session(), "Plant", "Maintenance", "source")
    assert calls == []  # Secrets Manager is local and CloudFormation is not: real AWS is never called


def test_the_notify_payload_from_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    payload = {
        "clientAccessToken": "t0k3n",
        "clientMode": "destination",
        "region": "eu-west-1",
        "services": ["SSH"],
    }
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(payload)))
    arguments = device.argparse.Namespace(notify="-", secret=None, region=None)
    source = device._TokenSource(arguments)
    document = source.read()
    assert (document.token, document.region, document.services) == ("t0k3n", "eu-west-1", ("SSH",))
    assert not source.rereadable  # stdin is read once: a refused token then ends the device
