"""A local AWS IoT Secure Tunneling service, without CDK: what tests of code that uses tunnels run against.

- ``TunnelEmulator``: the Secure Tunneling control plane over its real wire protocol, with faults, and
  beside it (``TunnelEmulator.data_plane``, a ``DataPlane``) the tunnels' WebSocket data plane.
- ``LocalAws``: the emulator plus moto's Secrets Manager, and the environment that points boto3 at them.
- ``ManualClock``: a clock tests advance to expire tunnels.

Nothing here imports aws_cdk, jsii or the construct: a device or a test that never synthesizes needs
neither Node.js nor CDK (``cdk_secure_tunnel.testing`` adds the CDK-aware parts). Heavy dependencies
(botocore's model, moto) load on first use.
"""

from .clock import Clock, ManualClock, SystemClock
from .control_plane import Call, TunnelEmulator
from .data_plane import DataPlane, LoggedMessage
from .errors import ServiceError
from .local_aws import LocalAws
from .tunnel_store import TunnelView

__all__ = [
    "Call",
    "Clock",
    "DataPlane",
    "LocalAws",
    "LoggedMessage",
    "ManualClock",
    "ServiceError",
    "SystemClock",
    "TunnelEmulator",
    "TunnelView",
]
