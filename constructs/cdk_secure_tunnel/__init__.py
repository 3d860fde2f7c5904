"""cdk-secure-tunnel: AWS IoT secure tunnels as CDK constructs, with their tokens in Secrets Manager.

>>> from aws_cdk import App, Stack
>>> from aws_cdk import aws_iam as iam
>>> from cdk_secure_tunnel import SecureTunnel
>>> stack = Stack(App(), "Pumps")
>>> tunnel = SecureTunnel(stack, "Maintenance", thing="pump-7", services=["SSH"])
>>> operator_role = iam.Role(stack, "Operator", assumed_by=iam.AccountRootPrincipal())
>>> grant = tunnel.grant_read_source_token(operator_role)
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .secure_tunnel import SecureTunnel

__all__ = ["SecureTunnel"]


def __getattr__(name: str) -> Any:
    # Imported on first use, not here: importing aws_cdk starts a Node.js process, and this package also
    # holds layers that must import without CDK: the emulator and its pytest plugin (loaded in every test
    # session), the data plane protocol, and the local proxy that devices run without Node.js. Every one of
    # them imports this module first.
    if name == "SecureTunnel":
        from .secure_tunnel import SecureTunnel  # noqa: PLC0415

        return SecureTunnel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
