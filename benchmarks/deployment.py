"""Deployment shape, read from the synthesized templates: Lambda invocations per CloudFormation
operation, resources, and how many tunnels fit in one stack.

Every custom resource gets one event per Create, Update and Delete. An event costs one invocation of the
function behind its ServiceToken, plus one of the user's handler when that function is the CDK provider
framework (recognized by the handler ARN it is given in ``USER_ON_EVENT_FUNCTION_ARN``). An Update that
replaces a resource is followed, in the cleanup phase, by a Delete of the old one.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .measure import Template

# CloudFormation's quotas: resources per stack, and the size of a template body uploaded to S3 (the CDK
# CLI always uploads through the bootstrap bucket).
MAX_RESOURCES = 500
MAX_TEMPLATE_BYTES = 1_000_000

CUSTOM_TYPES = ("Custom::", "AWS::CloudFormation::CustomResource")


def _invocations_per_event(template: Template, resource: Mapping[str, Any]) -> int:
    token = resource["Properties"]["ServiceToken"]
    function_id = token["Fn::GetAtt"][0] if isinstance(token, dict) and "Fn::GetAtt" in token else None
    function = template["Resources"].get(function_id, {}) if function_id else {}
    variables = function.get("Properties", {}).get("Environment", {}).get("Variables", {})
    return 2 if "USER_ON_EVENT_FUNCTION_ARN" in variables else 1


@dataclass(frozen=True)
class DeploymentShape:
    tunnels: int
    resources: int
    functions: int
    custom_resources: int
    invocations_per_event: int

    @property
    def create_invocations(self) -> int:
        return self.custom_resources * self.invocations_per_event

    @property
    def update_invocations(self) -> int:
        """One tunnel changed in place."""
        return self.invocations_per_event if self.custom_resources else 0

    @property
    def replace_invocations(self) -> int:
        """One tunnel replaced: its Update, then the old one's Delete."""
        return 2 * self.update_invocations

    @property
    def delete_invocations(self) -> int:
        return self.create_invocations


def shape(template: Template, tunnels: int) -> DeploymentShape:
    resources = template["Resources"]
    custom = [r for r in resources.values() if r["Type"].startswith(CUSTOM_TYPES)]
    per_event = {_invocations_per_event(template, resource) for resource in custom}
    return DeploymentShape(
        tunnels=tunnels,
        resources=len(resources),
        functions=sum(1 for r in resources.values() if r["Type"] == "AWS::Lambda::Function"),
        custom_resources=len(custom),
        invocations_per_event=max(per_event, default=0),
    )


def tunnels_per_stack(fixed: float, per_tunnel: float, limit: int) -> int:
    """How many tunnels fit under ``limit`` when one stack costs ``fixed`` plus ``per_tunnel`` each."""
    return int((limit - fixed) // per_tunnel) if per_tunnel > 0 else 0
