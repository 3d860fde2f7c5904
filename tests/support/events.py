"""CloudFormation's events to the custom resource handler, shaped as the provider framework passes them."""

import uuid
from typing import Any

from tunnel_lambda.custom_resource import Response, on_event

STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/Test/0f1e2d3c-aaaa-bbbb-cccc-000000000000"


def event(request_type: str, properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "RequestType": request_type,
        "StackId": STACK_ID,
        "RequestId": str(uuid.uuid4()),
        "LogicalResourceId": "Tunnel",
        "ResourceType": "Custom::SecureTunnel",
        "ResponseURL": "https://example.invalid/",
        "ResourceProperties": properties,
        **extra,
    }


def update(physical_id: str, new: dict[str, Any], old: dict[str, Any]) -> Response:
    return on_event(event("Update", new, PhysicalResourceId=physical_id, OldResourceProperties=old))
