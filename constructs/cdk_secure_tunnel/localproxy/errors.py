"""What can end a local proxy, each error with the exit status the command gives it.

Every message says what happened and what to do; none carries a token.

>>> print(HandshakeRejected(403, "Forbidden"))  # doctest: +ELLIPSIS
the tunneling service refused the access token (HTTP 403 Forbidden): it has been used already, ...
>>> int(HandshakeRejected(403, "Forbidden").exit_code)
4
"""

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit statuses of ``cdk-secure-tunnel`` that scripts can rely on."""

    OK = 0
    # An expected failure with no status of its own (a rotation that fails or times out, AWS refusing a
    # call for a reason not below): its message, no traceback. Also a bug, reported with its traceback.
    ERROR = 1
    USAGE = 2  # a bad option or value (argparse's own status), or AWS set up wrong (credentials, permissions)
    NOT_FOUND = 3  # no such secret, stack, tunnel or notify payload
    TOKEN_REJECTED = 4  # the service refused the token (spent, rotated, revoked) and no new one helped
    TUNNEL_CLOSED = 5  # the tunnel closed or expired
    UNREACHABLE = 6  # the service could not be reached within the retry budget, or not trusted (TLS)
    SERVICE_MISMATCH = 7  # the tunnel's services do not match the mapping given
    INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT


class LocalProxyError(Exception):
    """An expected failure: the command prints its message (no traceback) and exits with ``exit_code``
    (``ERROR`` unless a subclass says which)."""

    exit_code: ExitCode = ExitCode.ERROR


class ConfigurationError(LocalProxyError):
    """A setting names something impossible; the message names the setting, the value and what is allowed."""

    exit_code = ExitCode.USAGE


class NotFound(LocalProxyError):
    exit_code = ExitCode.NOT_FOUND


class HandshakeRejected(LocalProxyError):
    """The service answered the WebSocket upgrade with a 4xx: retrying the same request cannot succeed."""

    exit_code = ExitCode.TOKEN_REJECTED

    def __init__(
        self, status: int, reason: str = "", detail: str = "", channel_id: str | None = None
    ) -> None:
        self.status = status
        self.reason = reason
        self.detail = detail
        self.channel_id = channel_id
        super().__init__(self._message())

    @property
    def token_refused(self) -> bool:
        """Whether a new access token could help (the service's answer for spent and revoked tokens)."""
        return self.status in (401, 403)

    def _message(self) -> str:
        what = f"HTTP {self.status} {self.reason}".strip()
        if self.detail:
            what += f": {self.detail}"
        if self.channel_id:
            what += f"; channel-id {self.channel_id}"
        if self.token_refused:
            return (
                f"the tunneling service refused the access token ({what}): it has been used already, was "
                "rotated or revoked, or its tunnel is closed; rotate the token (aws secretsmanager "
                "rotate-secret --secret-id <secret ARN>) and connect with the new one"
            )
        return (
            f"the tunneling service rejected the connection ({what}); check the region or endpoint (it must "
            "be where the tunnel was opened) and the client mode of the token"
        )


class TunnelClosed(LocalProxyError):
    """The tunnel is closed (by CloseTunnel, ``cdk destroy`` or the end of its lifetime)."""

    exit_code = ExitCode.TUNNEL_CLOSED


class Unreachable(LocalProxyError):
    """The service could not be reached (network errors, 5xx) within the retry budget."""

    exit_code = ExitCode.UNREACHABLE


class CertificateUntrusted(Unreachable):
    """The service's TLS certificate did not verify: a wrong CA, a TLS-intercepting proxy, a wrong host.

    Retrying cannot help (the next attempt meets the same certificate), so the proxy ends at once.
    """


class ServiceMismatch(LocalProxyError):
    """The services the tunnel carries do not match the proxy's mapping (V3 guide, "Step 1")."""

    exit_code = ExitCode.SERVICE_MISMATCH
