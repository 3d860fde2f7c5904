"""A local proxy for AWS IoT secure tunnels, in Python: the data plane protocol V1-V3 over ``websockets``.

It imports nothing from ``aws_cdk`` or jsii: a device runs it without Node.js (install the
``cdk-secure-tunnel-proxy`` distribution there, see docs/local-proxy.md).

    settings = ProxySettings(mode="destination", access_token=token, endpoint=data_endpoint(region=region),
                             services=parse_services("SSH=22"))
    asyncio.run(LocalProxy(settings).run())

- ``settings``: ``ProxySettings``, ``parse_services``, ``data_endpoint``, ``RetryPolicy``.
- ``proxy``: ``LocalProxy``, connected and reconnected until its tunnel ends.
- ``multiplexer``: streams and connections; ``connection``: the WebSocket to the service.
- ``errors``: what can end a proxy, each with an exit status.
"""

from .errors import (
    CertificateUntrusted,
    ConfigurationError,
    ExitCode,
    HandshakeRejected,
    LocalProxyError,
    NotFound,
    ServiceMismatch,
    TunnelClosed,
    Unreachable,
)
from .proxy import LocalProxy, resolve_services
from .settings import ProxySettings, RetryPolicy, Target, data_endpoint, new_client_token, parse_services

__all__ = [
    "CertificateUntrusted",
    "ConfigurationError",
    "ExitCode",
    "HandshakeRejected",
    "LocalProxy",
    "LocalProxyError",
    "NotFound",
    "ProxySettings",
    "RetryPolicy",
    "ServiceMismatch",
    "Target",
    "TunnelClosed",
    "Unreachable",
    "data_endpoint",
    "new_client_token",
    "parse_services",
    "resolve_services",
]
