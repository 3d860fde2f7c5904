"""The tunnel handler in this process, against local AWS: the Secure Tunneling emulator and moto.

>>> with LocalHandler() as local:  # doctest: +SKIP
...     local.on_event(local.event("Create", local.properties(0)))
"""

import os
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any

import boto3

from .approaches import LIFETIME_MINUTES, SERVICES, STACK_NAME, thing_name

if TYPE_CHECKING:
    from botocore.model import OperationModel
    from cdk_secure_tunnel.testing import LocalAws, TunnelEmulator
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from tunnel_lambda.custom_resource import Event, Response

REGION = "us-east-1"
ACCOUNT = "123456789012"
STACK_ID = (
    f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{STACK_NAME}/0f1e2d3c-aaaa-bbbb-cccc-000000000000"
)
SERVICE_TOKEN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{STACK_NAME}-framework-onEvent"


class LocalHandler:
    """Starts local AWS, points boto3 at it (environment variables, as in the tests) and imports the
    handler package ``tunnel_lambda`` as Lambda would. The handler's clients are created on first use, after
    the environment is set.
    """

    def __init__(self) -> None:
        self._saved_environment: dict[str, str] = {}
        self._aws: LocalAws | None = None
        self._secrets: SecretsManagerClient | None = None

    def __enter__(self) -> "LocalHandler":
        from cdk_secure_tunnel.emulator.local_aws import UNSET_VARIABLES  # noqa: PLC0415
        from cdk_secure_tunnel.testing import LocalAws  # noqa: PLC0415  (moto is slow to import)

        self._aws = LocalAws(region=REGION).start()
        self._saved_environment = dict(os.environ)
        for name in UNSET_VARIABLES:
            os.environ.pop(name, None)
        os.environ.update(self._aws.environment())
        from tunnel_lambda import aws_clients  # noqa: PLC0415  (its clients read the environment set above)

        aws_clients.tunneling.cache_clear()
        aws_clients.secrets.cache_clear()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        from tunnel_lambda import aws_clients  # noqa: PLC0415

        aws_clients.tunneling.cache_clear()
        aws_clients.secrets.cache_clear()
        os.environ.clear()
        os.environ.update(self._saved_environment)
        if self._aws is not None:
            self._aws.stop()

    @property
    def emulator(self) -> "TunnelEmulator":
        assert self._aws is not None, "use LocalHandler as a context manager"
        return self._aws.emulator

    def reset(self) -> None:
        """Empty both services and forget the emulator's rate limits and calls."""
        assert self._aws is not None, "use LocalHandler as a context manager"
        self._aws.reset()

    @staticmethod
    def on_event(event: "Event") -> "Response":
        from tunnel_lambda.custom_resource import on_event  # noqa: PLC0415

        return on_event(event, None)

    def new_secret(self) -> str:
        """A token secret as CloudFormation creates it before the tunnel resource; returns its ARN."""
        if self._secrets is None:
            self._secrets = boto3.session.Session().client("secretsmanager")
        created = self._secrets.create_secret(Name=f"token-{uuid.uuid4().hex}", SecretString=uuid.uuid4().hex)
        return created["ARN"]

    def properties(self, index: int, *, thing: bool = True) -> dict[str, Any]:
        """Tunnel ``index``'s properties as SecureTunnel synthesizes them and CloudFormation passes them
        (scalars as strings); without a thing, a second secret keeps the destination token.
        """
        properties: dict[str, Any] = {
            "ServiceToken": SERVICE_TOKEN,
            "Services": list(SERVICES),
            "MaxLifetimeMinutes": str(LIFETIME_MINUTES),
            "Description": f"cdk-secure-tunnel {STACK_NAME}/Tunnel{index} in stack {STACK_NAME}",
            "SourceTokenSecretArn": self.new_secret(),
        }
        if thing:
            properties["ThingName"] = thing_name(index)
        else:
            properties["DestinationTokenSecretArn"] = self.new_secret()
        return properties

    @staticmethod
    def event(request_type: str, properties: Mapping[str, Any], index: int = 0, **extra: Any) -> "Event":
        return {
            "RequestType": request_type,
            "ServiceToken": SERVICE_TOKEN,
            "ResponseURL": "https://cloudformation-custom-resource-response.example/",
            "StackId": STACK_ID,
            "RequestId": str(uuid.uuid4()),
            "LogicalResourceId": f"Tunnel{index}",
            "ResourceType": "Custom::SecureTunnel",
            "ResourceProperties": dict(properties),
            **extra,
        }


Call = tuple[str, str]


@contextmanager
def handler_calls() -> Iterator[list[Call]]:
    """Every API call the handler's clients make inside the block, as (service, operation).

    botocore's ``before-call`` fires once per call whatever its retries, and counting there needs no
    change to the handler: its clients are shared (functools.cache), so hooking them hooks it.
    """
    from tunnel_lambda import aws_clients  # noqa: PLC0415

    calls: list[Call] = []

    def record(model: "OperationModel", **_: Any) -> None:
        calls.append((model.service_model.service_name, model.name))

    clients = (aws_clients.tunneling(), aws_clients.secrets())
    for client in clients:
        client.meta.events.register("before-call", record)
    try:
        yield calls
    finally:
        for client in clients:
            client.meta.events.unregister("before-call", record)
