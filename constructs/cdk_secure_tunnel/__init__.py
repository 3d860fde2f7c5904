"""cdk-secure-tunnel: AWS IoT secure tunnels as CDK constructs, with their tokens in Secrets Manager.

>>> from cdk_secure_tunnel import SecureTunnel
>>> tunnel = SecureTunnel(stack, "Maintenance", thing="pump-7", services=["SSH"])  # doctest: +SKIP
>>> tunnel.grant_read_source_token(operator_role)  # doctest: +SKIP
"""

from .secure_tunnel import SecureTunnel

__all__ = ["SecureTunnel"]
