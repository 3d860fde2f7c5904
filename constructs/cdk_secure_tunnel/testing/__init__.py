"""Local AWS for testing code that uses AWS IoT Secure Tunneling, without an AWS account.

- ``TunnelEmulator``: the Secure Tunneling control plane over its real wire protocol, with faults.
- ``LocalAws``: the emulator plus moto's Secrets Manager, and the environment that points boto3 at them.
- ``ManualClock``: a clock tests advance to expire tunnels.
- ``normalize_assets``: a syrupy matcher for snapshots of your templates that survive library upgrades
  (``cdk_secure_tunnel.testing.snapshots``).
- pytest fixtures ``local_aws`` and ``tunnel_emulator`` (``cdk_secure_tunnel.testing.pytest_plugin``,
  loaded automatically).
- ``python -m cdk_secure_tunnel.testing``: serve it all until interrupted.

>>> from cdk_secure_tunnel.testing import LocalAws
>>> with LocalAws() as aws:  # doctest: +SKIP
...     os.environ.update(aws.environment())
...     aws.emulator.fail_next("OpenTunnel", error="ThrottlingException")
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .clock import Clock, ManualClock, SystemClock
    from .emulator import Call, TunnelEmulator
    from .errors import ServiceError
    from .local_aws import LocalAws
    from .snapshots import normalize_assets
    from .tunnels import TunnelView

__all__ = [
    "Call",
    "Clock",
    "LocalAws",
    "ManualClock",
    "ServiceError",
    "SystemClock",
    "TunnelEmulator",
    "TunnelView",
    "normalize_assets",
]

_MODULES = {
    "Call": "emulator",
    "Clock": "clock",
    "LocalAws": "local_aws",
    "ManualClock": "clock",
    "ServiceError": "errors",
    "SystemClock": "clock",
    "TunnelEmulator": "emulator",
    "TunnelView": "tunnels",
    "normalize_assets": "snapshots",
}


def __getattr__(name: str) -> Any:
    # Imported on first use: the pytest plugin in this package loads in every test session, and botocore's
    # model and moto are slow to import.
    if name in _MODULES:
        return getattr(import_module(f".{_MODULES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
