"""Deploy a synthesized template's secure tunnels against local AWS, the way CloudFormation would.

Only the parts of a template that SecureTunnel's handler touches are played: token secrets are created in
Secrets Manager (moto), things are taken by name, and each ``Custom::SecureTunnel`` gets the events the
CDK provider framework would pass to the handler, in CloudFormation's order: creates and updates first,
deletes of replaced and removed resources in the cleanup phase, and a rollback when a step fails. Each
``AWS::SecretsManager::RotationSchedule`` configures its secret's rotation function (a Lambda ARN named
after the function's logical id), so that ``rotate-secret`` runs the stack's upkeep function against
``LocalAws`` (see ``cdk_secure_tunnel.emulator.secrets_manager``).

>>> from aws_cdk import App, Stack
>>> from aws_cdk.assertions import Template
>>> from cdk_secure_tunnel import SecureTunnel
>>> stack = Stack(App(), "Pumps")
>>> _ = SecureTunnel(stack, "Maintenance", thing="pump-7")
>>> aws = getfixture("local_aws")  # in a test: the local_aws fixture
>>> cloudformation = LocalCloudFormation("Pumps")
>>> cloudformation.deploy(Template.from_stack(stack).to_json())
>>> (tunnel,) = aws.emulator.open_tunnels()
>>> cloudformation.token_document("MaintenanceSourceToken30C10707")["tunnelId"] == tunnel.tunnel_id
True
>>> cloudformation.destroy()
>>> aws.emulator.open_tunnels()
[]
"""

import json
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tunnel_lambda.contract import RESOURCE_TYPE

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

Handler = Callable[[Mapping[str, Any], Any], Mapping[str, Any]]
Template = Mapping[str, Any]

logger = logging.getLogger(__name__)

# The provider framework answers a failed Create with this id and never passes the Delete that follows
# to the handler (aws-cdk provider-framework/runtime/framework.ts).
CREATE_FAILED_MARKER = "AWSCDK::CustomResourceProviderFramework::CREATE_FAILED"
ROTATION_SCHEDULE_TYPE = "AWS::SecretsManager::RotationSchedule"


class DeploymentFailed(Exception):
    """A stack operation failed; the stack was rolled back as CloudFormation would."""


def tunnel_handler() -> Handler:
    """The custom resource handler: the ``tunnel_lambda`` package the construct deploys as its asset."""
    # Imported on first use, like boto3 below: this module loads with the pytest plugin in every session.
    from tunnel_lambda.custom_resource import on_event  # noqa: PLC0415

    return on_event


def _as_cloudformation_passes_it(value: Any) -> Any:
    """CloudFormation hands custom resources every scalar as a string."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return [_as_cloudformation_passes_it(item) for item in value]
    if isinstance(value, dict):
        return {key: _as_cloudformation_passes_it(item) for key, item in value.items()}
    return value


@dataclass
class _Resource:
    physical_id: str
    properties: dict[str, Any]
    data: Mapping[str, Any] = field(default_factory=dict)


class LocalCloudFormation:
    """One stack's custom resources, deployed through the handler against the configured endpoints.

    Set ``AWS_ENDPOINT_URL_IOTSECURETUNNELING`` and ``AWS_ENDPOINT_URL_SECRETS_MANAGER`` first (the
    ``local_aws`` fixture does). ``handler`` defaults to the packaged handler; tests pass a wrapper to
    inject faults.
    """

    def __init__(
        self,
        stack_name: str = "Test",
        *,
        handler: Handler | None = None,
        region: str = "us-east-1",
        account: str = "123456789012",
    ) -> None:
        self.stack_name = stack_name
        self.stack_id = f"arn:aws:cloudformation:{region}:{account}:stack/{stack_name}/{uuid.uuid4()}"
        self.handler = handler or tunnel_handler()
        self.region = region
        self.account = account
        self.tunnels: dict[str, _Resource] = {}
        self.secrets: dict[str, str] = {}
        # Rotation schedules by logical id: their resolved properties as last configured.
        self.rotations: dict[str, dict[str, Any]] = {}
        self._template: Template = {"Resources": {}}
        self._secrets_client: SecretsManagerClient | None = None

    # -- what tests read -------------------------------------------------------------------------------

    def physical_id(self, logical_id: str) -> str:
        return self.tunnels[logical_id].physical_id

    def attribute(self, logical_id: str, name: str) -> Any:
        return self.tunnels[logical_id].data[name]

    def token_document(self, secret_logical_id: str) -> dict[str, Any]:
        """The JSON the handler wrote to a token secret (AWSCURRENT)."""
        # The stage named: moto answers a request without one from a version that UpdateSecretVersionStage
        # (how the handler's compare-and-set writes become current) does not move.
        value = self._secrets().get_secret_value(
            SecretId=self.secrets[secret_logical_id], VersionStage="AWSCURRENT"
        )
        return json.loads(value["SecretString"])  # type: ignore[no-any-return]

    # -- stack operations --------------------------------------------------------------------------------

    def deploy(self, template: Template) -> None:
        """Create or update the stack to ``template``; on failure roll back and raise DeploymentFailed."""
        resources = template.get("Resources", {})
        created_secrets = [
            logical_id
            for logical_id, resource in resources.items()
            if resource["Type"] == "AWS::SecretsManager::Secret" and logical_id not in self.secrets
        ]
        for logical_id in created_secrets:
            self._create_secret(logical_id, resources[logical_id])
        replaced = self._apply_tunnels(template, created_secrets)
        self._configure_rotations(template)
        old_resources = self._template.get("Resources", {})
        self._template = template
        # Cleanup phase: replaced resources and resources no longer in the template are deleted.
        for logical_id, before in replaced:
            self._delete(logical_id, before)
        for logical_id, resource in old_resources.items():
            if logical_id in resources:
                continue
            if resource["Type"] == RESOURCE_TYPE:
                self._delete(logical_id, self.tunnels.pop(logical_id))
            elif resource["Type"] == "AWS::SecretsManager::Secret":
                self._delete_secret(logical_id)
            elif resource["Type"] == ROTATION_SCHEDULE_TYPE:
                self._remove_rotation(logical_id)

    def _apply_tunnels(self, template: Template, created_secrets: list[str]) -> list[tuple[str, _Resource]]:
        """Create and update the template's tunnels; the replaced resources are returned for cleanup."""
        done: list[tuple[str, _Resource | None]] = []  # (logical id, state before) for rollback
        for logical_id, resource in template.get("Resources", {}).items():
            if resource["Type"] != RESOURCE_TYPE:
                continue
            properties = self._resolve(resource.get("Properties", {}), template)
            before = self.tunnels.get(logical_id)
            if before is not None and properties == before.properties:
                continue
            try:
                if before is None:
                    self._create(logical_id, properties)
                else:
                    self._update(logical_id, properties, before)
            except Exception as error:
                if before is not None:
                    # The failed resource itself gets a rollback Update back to its old properties.
                    done.append((logical_id, before))
                    self.tunnels[logical_id] = _Resource(before.physical_id, properties)
                self._roll_back(done, created_secrets)
                raise DeploymentFailed(f"{self.stack_name}: {logical_id}: {error}") from error
            done.append((logical_id, before))
        return [
            (logical_id, before)
            for logical_id, before in done
            if before is not None and self.tunnels[logical_id].physical_id != before.physical_id
        ]

    def _configure_rotations(self, template: Template) -> None:
        """RotateSecret for each new or changed rotation schedule, as CloudFormation's resource calls it."""
        from botocore.exceptions import ClientError  # noqa: PLC0415  (see boto3 below)

        for logical_id, resource in template.get("Resources", {}).items():
            if resource["Type"] != ROTATION_SCHEDULE_TYPE:
                continue
            properties = self._resolve(resource.get("Properties", {}), template)
            if self.rotations.get(logical_id) == properties:
                continue
            # The schedule's own default is to rotate at once; SecureTunnel's schedules turn it off.
            immediately = str(properties.get("RotateImmediatelyOnUpdate", True)).lower() == "true"
            rules = properties.get("RotationRules")
            try:
                self._secrets().rotate_secret(
                    SecretId=properties["SecretId"],
                    RotationLambdaARN=properties["RotationLambdaARN"],
                    RotateImmediately=immediately,
                    **({"RotationRules": rules} if rules else {}),
                )
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                    raise
                # A Secrets Manager other than LocalAws's (moto.mock_aws, say) knows no such function.
                logger.warning("%s: rotation not configured: %s", logical_id, error)
                continue
            self.rotations[logical_id] = properties

    def _remove_rotation(self, logical_id: str) -> None:
        properties = self.rotations.pop(logical_id, None)
        if properties is not None and properties["SecretId"] in self.secrets.values():
            self._secrets().cancel_rotate_secret(SecretId=properties["SecretId"])

    def destroy(self) -> None:
        """Delete the stack: every tunnel resource (newest first), then the secrets."""
        for logical_id in reversed(list(self.tunnels)):
            self._delete(logical_id, self.tunnels.pop(logical_id))
        for logical_id in list(self.secrets):
            self._delete_secret(logical_id)
        self.rotations.clear()
        self._template = {"Resources": {}}

    # -- events ------------------------------------------------------------------------------------------

    def _event(self, request_type: str, logical_id: str, properties: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "RequestType": request_type,
            "ServiceToken": f"arn:aws:lambda:{self.region}:{self.account}:function:framework-onEvent",
            "ResponseURL": "https://cloudformation-custom-resource-response.example/",
            "StackId": self.stack_id,
            "RequestId": str(uuid.uuid4()),
            "LogicalResourceId": logical_id,
            "ResourceType": RESOURCE_TYPE,
            "ResourceProperties": _as_cloudformation_passes_it(dict(properties)),
        }

    def _call(self, event: Mapping[str, Any]) -> Mapping[str, Any]:
        return self.handler(event, None)

    def _create(self, logical_id: str, properties: dict[str, Any]) -> None:
        response = self._call(self._event("Create", logical_id, properties))
        data = response.get("Data", {})
        self.tunnels[logical_id] = _Resource(response["PhysicalResourceId"], properties, data)

    def _update(self, logical_id: str, properties: dict[str, Any], before: _Resource) -> None:
        event = self._event("Update", logical_id, properties)
        event["PhysicalResourceId"] = before.physical_id
        event["OldResourceProperties"] = _as_cloudformation_passes_it(before.properties)
        response = self._call(event)
        physical_id = response.get("PhysicalResourceId", before.physical_id)
        self.tunnels[logical_id] = _Resource(physical_id, properties, response.get("Data", {}))

    def _delete(self, logical_id: str, resource: _Resource) -> None:
        if resource.physical_id == CREATE_FAILED_MARKER:
            return
        event = self._event("Delete", logical_id, resource.properties)
        event["PhysicalResourceId"] = resource.physical_id
        self._call(event)

    def _roll_back(self, done: list[tuple[str, _Resource | None]], created_secrets: list[str]) -> None:
        """Undo what succeeded, newest first: rollback Updates (properties swapped), then Deletes."""
        for logical_id, before in reversed(done):
            current = self.tunnels[logical_id]
            if before is None:
                self._delete(logical_id, self.tunnels.pop(logical_id))
            elif current.physical_id != before.physical_id:
                # A replacement rolls back to the old resource; the new one is deleted in cleanup.
                self.tunnels[logical_id] = before
                self._delete(logical_id, current)
            else:
                self._update(logical_id, before.properties, current)
        for logical_id in created_secrets:
            self._delete_secret(logical_id)

    # -- secrets and references --------------------------------------------------------------------------

    def _secrets(self) -> "SecretsManagerClient":
        if self._secrets_client is None:
            import boto3  # noqa: PLC0415

            self._secrets_client = boto3.client("secretsmanager", region_name=self.region)
        return self._secrets_client

    def _create_secret(self, logical_id: str, resource: Mapping[str, Any]) -> None:
        properties = self._resolve(resource.get("Properties", {}), {"Resources": {}})
        created = self._secrets().create_secret(
            Name=f"{logical_id}-{uuid.uuid4().hex[:12]}",
            Description=properties.get("Description", ""),
            # Secrets Manager's generated placeholder, which the handler overwrites with the token.
            SecretString=uuid.uuid4().hex,
            Tags=properties.get("Tags", []),
        )
        self.secrets[logical_id] = created["ARN"]

    def _delete_secret(self, logical_id: str) -> None:
        self._secrets().delete_secret(SecretId=self.secrets.pop(logical_id), ForceDeleteWithoutRecovery=True)

    def _resolve(self, value: Any, template: Template) -> Any:
        """Resolve the intrinsics a SecureTunnel template uses: Ref, Fn::Join, and Fn::GetAtt (an ARN)."""
        if isinstance(value, list):
            return [self._resolve(item, template) for item in value]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Ref"}:
            return self._ref(value["Ref"], template)
        if set(value) == {"Fn::GetAtt"}:
            logical_id, attribute = value["Fn::GetAtt"]
            return self._attribute(logical_id, attribute, template)
        if set(value) == {"Fn::Join"}:
            separator, parts = value["Fn::Join"]
            return separator.join(str(self._resolve(part, template)) for part in parts)
        return {key: self._resolve(item, template) for key, item in value.items()}

    def _attribute(self, logical_id: str, attribute: str, template: Template) -> str:
        resource_type = template.get("Resources", {}).get(logical_id, {}).get("Type")
        if resource_type == "AWS::Lambda::Function" and attribute == "Arn":
            # Named as CloudFormation names a function: the stack, then the logical id.
            name = f"{self.stack_name}-{logical_id}"
            return f"arn:aws:lambda:{self.region}:{self.account}:function:{name}"
        return f"arn:aws:local:{self.region}:{self.account}:{logical_id}/{attribute}"

    def _ref(self, name: str, template: Template) -> str:
        pseudo = {
            "AWS::StackId": self.stack_id,
            "AWS::StackName": self.stack_name,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::Partition": "aws",
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.secrets:
            return self.secrets[name]
        resource = template.get("Resources", {}).get(name, {})
        if resource.get("Type") == "AWS::IoT::Thing":
            return str(resource["Properties"]["ThingName"])
        raise ValueError(f"LocalCloudFormation cannot resolve Ref {name!r}")
