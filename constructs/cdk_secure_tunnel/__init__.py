"""cdk-secure-tunnel: AWS IoT secure tunnels as CDK constructs, with their tokens in Secrets Manager.

>>> from cdk_secure_tunnel import SecureTunnel
>>> tunnel = SecureTunnel(stack, "Maintenance", thing="pump-7", services=["SSH"])  # doctest: +SKIP
>>> tunnel.grant_read_source_token(operator_role)  # doctest: +SKIP
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .secure_tunnel import SecureTunnel

__all__ = ["SecureTunnel"]


def __getattr__(name: str) -> Any:
    # Imported on first use: aws_cdk starts a Node.js process, which cdk_secure_tunnel.testing (a pytest
    # plugin loaded in every test session) must not pay for.
    if name == "SecureTunnel":
        from .secure_tunnel import SecureTunnel  # noqa: PLC0415

        return SecureTunnel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
