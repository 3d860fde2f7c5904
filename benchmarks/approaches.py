"""The three ways to get tunnels from a CDK app that the benchmarks compare, and the work they share.

Every approach opens tunnels to the things ``device-0`` .. ``device-<count-1>`` for SSH with the service's
maximum lifetime (``stacks`` builds them). This module imports no aws_cdk, so the benchmark's own process
never starts jsii's Node.js.
"""

from enum import StrEnum

SERVICES = ["SSH"]
LIFETIME_MINUTES = 720
STACK_NAME = "Bench"


class Approach(StrEnum):
    SECURE_TUNNEL = "SecureTunnel"
    AWS_CUSTOM_RESOURCE = "AwsCustomResource"
    CFN_TUNNEL = "CfnTunnel"


def thing_name(index: int) -> str:
    return f"device-{index}"
