"""Reading a token secret, and rotating it when the service refuses its token.

A token connects once (without a client token); the construct's secrets rotate on demand, which asks the
tunneling service for a fresh token: ``rotate-secret``, then wait for the new AWSCURRENT version.
"""

import time
from collections.abc import Callable
from typing import Any

from ..localproxy.errors import LocalProxyError, NotFound, TunnelClosed
from .aws_errors import error_code, error_message, refused
from .documents import TokenDocument
from .output import Progress

CURRENT = "AWSCURRENT"
PENDING = "AWSPENDING"
ROTATION_TIMEOUT = 120.0


class TokenSecret:
    """One token secret: its current document, and rotation. Blocking (boto3); run it in a thread."""

    def __init__(self, session: Any, arn: str, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.arn = arn
        self.session = session
        self._client = session.client("secretsmanager", region_name=region_of_arn(arn))
        self._sleep = sleep

    def read(self) -> TokenDocument:
        from botocore.exceptions import ClientError  # noqa: PLC0415

        try:
            value = self._client.get_secret_value(SecretId=self.arn)  # AWSCURRENT's
        except ClientError as error:
            if error_code(error) == "ResourceNotFoundException":
                raise NotFound(f"secret {self.arn}: not found; check the ARN and the region") from None
            raise refused(error, f"secret {self.arn}: cannot read it") from None
        if not value.get("SecretString"):
            raise NotFound(f"secret {self.arn}: holds no token yet; deploy the stack first")
        return TokenDocument.parse(value["SecretString"], origin=f"secret {self.arn}")

    def _version_with(self, stage: str) -> str | None:
        from botocore.exceptions import ClientError  # noqa: PLC0415

        try:
            described = self._client.describe_secret(SecretId=self.arn)
        except ClientError as error:
            raise refused(
                error,
                f"secret {self.arn}: cannot describe it",
                "waiting for a rotation needs secretsmanager:DescribeSecret",
            ) from None
        for version, stages in described.get("VersionIdsToStages", {}).items():
            if stage in stages:
                return str(version)
        return None

    def current_version(self) -> str | None:
        return self._version_with(CURRENT)

    def rotate(self, progress: Progress, timeout: float = ROTATION_TIMEOUT) -> TokenDocument:
        """``rotate-secret`` and wait (showing progress) until a new version is current; its document.

        A rotation already under way (someone else's: its new token revoked ours before it became
        current) is waited for instead of started again, which Secrets Manager would refuse anyway.
        """
        from botocore.exceptions import ClientError  # noqa: PLC0415

        before = self.current_version()
        started = time.monotonic()
        if self._version_with(PENDING) is not None:
            progress.update(f"{self.arn} is being rotated: waiting for its new token")
            return self._wait(before, started, progress, timeout)
        progress.update(f"rotating {self.arn} for a fresh token")
        try:
            self._client.rotate_secret(SecretId=self.arn)
        except ClientError as error:
            progress.done()
            message = error_message(error)
            if "closed" in message.lower():
                raise TunnelClosed(f"cannot rotate {self.arn}: {message}") from None
            raise refused(
                error,
                f"cannot rotate {self.arn}",
                "rotation needs the construct's rotate_on_demand (the default) and "
                "secretsmanager:RotateSecret",
            ) from None
        return self._wait(before, started, progress, timeout)

    def _wait(self, before: str | None, started: float, progress: Progress, timeout: float) -> TokenDocument:
        delay = 0.25
        while True:
            elapsed = time.monotonic() - started
            if self.current_version() != before:
                progress.update(f"rotated {self.arn} in {elapsed:.0f} s")
                progress.done()
                return self.read()
            if elapsed > timeout:
                progress.done()
                raise LocalProxyError(
                    f"rotating {self.arn}: no new version after {timeout:.0f} s; see the rotation function's "
                    "logs (the secret's RotationLambdaARN)"
                )
            progress.update(f"rotating {self.arn}: waiting for the new token ({elapsed:.0f} s)")
            self._sleep(delay)
            delay = min(2.0, delay * 2)


def region_of_arn(arn: str) -> str | None:
    """arn:aws:secretsmanager:<region>:... -> region (None for a name rather than an ARN)."""
    parts = arn.split(":")
    return parts[3] or None if len(parts) > 5 and parts[0] == "arn" else None


def tunnel_status(session: Any, tunnel_id: str, region: str | None) -> dict[str, Any] | None:
    """DescribeTunnel's tunnel, or None if it cannot be read (no permission, no such tunnel, offline)."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    try:
        client = session.client("iotsecuretunneling", region_name=region)
        return dict(client.describe_tunnel(tunnelId=tunnel_id)["tunnel"])
    except (ClientError, BotoCoreError):
        return None
