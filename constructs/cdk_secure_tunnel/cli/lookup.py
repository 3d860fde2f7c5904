"""Finding a tunnel's token secret from the stack name and the construct's path.

Two ways, tried in this order:

1. The secrets' tags: every token secret carries ``cdk-secure-tunnel:stack-id`` = the stack's ARN (which
   names the stack), and CloudFormation names (and tags, ``aws:cloudformation:logical-id``) it after its
   logical id, which CDK derives from the construct path. Needs only ``secretsmanager:ListSecrets``.
2. The stack's resources: CloudFormation's DescribeStackResource for that logical id. Needs
   ``cloudformation:DescribeStackResource``; skipped when Secrets Manager is a local endpoint and
   CloudFormation is not (an offline setup has no CloudFormation).

A way AWS denies is passed over for the next; when every way tried was denied, the error names the
permissions and suggests ``--secret``.

>>> logical_id(["Maintenance", "SourceToken", "Resource"])
'MaintenanceSourceToken30C10707'
"""

import hashlib
import os
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ..localproxy.errors import ConfigurationError, NotFound
from .aws_errors import error_message, is_denied

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

# The tag that ties token secrets to their stack: tunnel_lambda.contract.OWNER_STACK_TAG, which a test keeps
# equal to this (the device's distribution carries the command, not the handler's package).
SECRET_STACK_TAG = "cdk-secure-tunnel:stack-id"  # noqa: S105  (a tag key)
CLOUDFORMATION_LOGICAL_ID_TAG = "aws:cloudformation:logical-id"
SECRET_IDS = {"source": "SourceToken", "destination": "DestinationToken"}
# What each way calls (the permissions named when AWS denies them).
LIST_SECRETS = "secretsmanager:ListSecrets"
DESCRIBE_STACK_RESOURCE = "cloudformation:DescribeStackResource"

_Found = TypeVar("_Found")

# CDK's logical ids (aws-cdk-lib core, makeUniqueId): the path's alphanumerics, then 8 hex digits of the
# path's MD5. "Default" is left out everywhere, "Resource" from the readable part only.
_HIDDEN_ID = "Default"
_HIDDEN_FROM_HUMAN_ID = "Resource"
_HASH_LENGTH = 8
_MAX_HUMAN_LENGTH = 240


def logical_id(components: Sequence[str]) -> str:
    """The logical id CDK gives the resource at ``components`` (its path below the stack)."""
    components = [component for component in components if component != _HIDDEN_ID]
    digest = hashlib.md5("/".join(components).encode(), usedforsecurity=False).hexdigest()
    human: list[str] = []
    for component in components:
        if not human or not human[-1].endswith(component):
            human.append(component)
    readable = "".join(
        re.sub(r"[^A-Za-z0-9]", "", component) for component in human if component != _HIDDEN_FROM_HUMAN_ID
    )
    return readable[:_MAX_HUMAN_LENGTH] + digest[:_HASH_LENGTH].upper()


def secret_logical_id(stack: str, construct_path: str, mode: str) -> str:
    """The logical id of a SecureTunnel's token secret; ``construct_path`` may start with the stack name."""
    components = [component for component in construct_path.strip("/").split("/") if component]
    if len(components) > 1 and components[0] == stack:
        components = components[1:]
    return logical_id([*components, SECRET_IDS[mode], "Resource"])


def _tags(secret: Any) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in secret.get("Tags", [])}


def _stack_name_of(stack_arn: str) -> str:
    # arn:aws:cloudformation:<region>:<account>:stack/<name>/<uuid>
    return stack_arn.partition(":stack/")[2].partition("/")[0]


def find_by_tags(client: "SecretsManagerClient", stack: str, secret_id: str) -> list[str]:
    """The ARNs of the stack's secrets whose logical id is ``secret_id``."""
    found = []
    for page in client.get_paginator("list_secrets").paginate(
        Filters=[{"Key": "tag-key", "Values": [SECRET_STACK_TAG]}]
    ):
        for secret in page.get("SecretList", []):
            tags = _tags(secret)
            if _stack_name_of(tags.get(SECRET_STACK_TAG, "")) != stack:
                continue
            named = tags.get(CLOUDFORMATION_LOGICAL_ID_TAG)
            if named == secret_id or (named is None and secret.get("Name", "").startswith(f"{secret_id}-")):
                found.append(secret["ARN"])
    return found


def _cloudformation_is_reachable() -> bool:
    """False when Secrets Manager points at a local endpoint and CloudFormation does not: offline."""
    local_secrets = os.environ.get("AWS_ENDPOINT_URL_SECRETS_MANAGER") or os.environ.get("AWS_ENDPOINT_URL")
    local_cloudformation = os.environ.get("AWS_ENDPOINT_URL_CLOUDFORMATION") or os.environ.get(
        "AWS_ENDPOINT_URL"
    )
    return not local_secrets or bool(local_cloudformation)


def find_by_stack_resources(session: Any, stack: str, secret_id: str) -> str | None:
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    client = session.client("cloudformation")
    try:
        detail = client.describe_stack_resource(StackName=stack, LogicalResourceId=secret_id)
    except ClientError as error:
        if is_denied(error):
            raise
        message = error.response.get("Error", {}).get("Message", "")
        if "does not exist" in message:
            return None
        raise NotFound(f"stack {stack}: CloudFormation answered {message or error}") from None
    except BotoCoreError:
        return None
    physical_id = detail["StackResourceDetail"].get("PhysicalResourceId")
    return str(physical_id) if physical_id else None


def _unless_denied(find: Callable[[], _Found], permission: str, denied: list[str]) -> _Found | None:
    """``find()``, or None when AWS denies it: then ``permission`` and AWS's words go to ``denied``."""
    from botocore.exceptions import ClientError  # noqa: PLC0415

    try:
        return find()
    except ClientError as error:
        if not is_denied(error):
            raise
        denied.append(f"{permission} ({error_message(error)})")
        return None


def find_secret(session: Any, stack: str, construct_path: str, mode: str) -> str:
    """The ARN of the ``mode`` token secret of the SecureTunnel at ``construct_path`` in ``stack``."""
    secret_id = secret_logical_id(stack, construct_path, mode)
    denied: list[str] = []
    tried = 1
    found = _unless_denied(
        lambda: find_by_tags(session.client("secretsmanager"), stack, secret_id), LIST_SECRETS, denied
    )
    if found and len(found) > 1:
        raise NotFound(f"stack {stack}: {len(found)} secrets are tagged as {secret_id}; pass --secret <ARN>")
    if found:
        return found[0]
    if _cloudformation_is_reachable():
        tried += 1
        arn = _unless_denied(
            lambda: find_by_stack_resources(session, stack, secret_id), DESCRIBE_STACK_RESOURCE, denied
        )
        if arn:
            return arn
    not_allowed = f"not allowed to call {' nor '.join(denied)}"
    if len(denied) == tried:
        granting = " (SecureTunnel.grant_connect does)" if mode == "source" else ""
        raise ConfigurationError(
            f"stack {stack}: cannot look for its {mode} token secret: {not_allowed}; grant "
            f"{'it' if tried == 1 else 'either'}{granting}, or pass --secret <the {mode} token secret's ARN>"
        )
    raise NotFound(
        f"stack {stack}: no {mode} token secret for construct path {construct_path!r} (logical id "
        f"{secret_id}); check the stack name, the path below the stack (e.g. Maintenance for "
        f"SecureTunnel(stack, 'Maintenance')) and the region"
        + ("" if mode == "source" else ", and that the tunnel stores its destination token")
        + (f" ({not_allowed})" if denied else "")
    )
