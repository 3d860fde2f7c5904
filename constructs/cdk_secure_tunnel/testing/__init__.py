"""Test a stack's secure tunnels without an AWS account: the emulator, plus what needs the construct.

- ``LocalCloudFormation``: deploys a synthesized template's tunnels through the packaged handler.
- ``TunnelEmulator``, ``LocalAws``, ``ManualClock``, ...: the CDK-free service emulator
  (``cdk_secure_tunnel.emulator``), re-exported here.
- ``normalize_assets``: a syrupy matcher for snapshots of your templates that survive library upgrades
  (``cdk_secure_tunnel.testing.snapshots``).
- ``serving_device_services``: an echo server and a web server standing in for a device's SSH and HTTP
  (``cdk_secure_tunnel.testing.device_services``).
- pytest fixtures ``local_aws`` and ``tunnel_emulator`` (``cdk_secure_tunnel.testing.pytest_plugin``,
  loaded automatically).
- ``python -m cdk_secure_tunnel.testing``: serve local AWS until interrupted.

Importing this package is cheap (the pytest plugin in it loads in every test session): boto3, botocore's
model, moto and the handler load when first used.

>>> from cdk_secure_tunnel.testing import LocalAws
>>> with LocalAws() as aws:
...     aws.emulator.fail_next("OpenTunnel", error="ThrottlingException")
...     sorted(aws.environment())[:3]
['AWS_ACCESS_KEY_ID', 'AWS_CONFIG_FILE', 'AWS_DEFAULT_REGION']
"""

from ..emulator import (
    Call,
    Clock,
    LocalAws,
    ManualClock,
    ServiceError,
    SystemClock,
    TunnelEmulator,
    TunnelView,
)
from .cloudformation import DeploymentFailed, LocalCloudFormation
from .device_services import serving_device_services
from .snapshots import normalize_assets

__all__ = [
    "Call",
    "Clock",
    "DeploymentFailed",
    "LocalAws",
    "LocalCloudFormation",
    "ManualClock",
    "ServiceError",
    "SystemClock",
    "TunnelEmulator",
    "TunnelView",
    "normalize_assets",
    "serving_device_services",
]
