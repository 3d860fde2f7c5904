"""A whole local AWS for the construct's code: the tunnel emulator (control and data plane) plus moto's
Secrets Manager.

>>> import os
>>> from unittest import mock
>>> import boto3
>>> with LocalAws() as aws, mock.patch.dict(os.environ, aws.environment()):
...     tunnel_id = boto3.client("iotsecuretunneling").open_tunnel()["tunnelId"]
...     secrets = boto3.client("secretsmanager")
...     arn = secrets.create_secret(Name="example-token", SecretString="s3cret")["ARN"]
...     value = secrets.get_secret_value(SecretId=arn)["SecretString"]
...     aws.reset()
>>> aws.emulator.tunnels(), value
([], 's3cret')
"""

import logging
import urllib.request
from typing import TYPE_CHECKING

from .control_plane import TunnelEmulator

if TYPE_CHECKING:
    from moto.server import ThreadedMotoServer

# The data plane's URL (ws:// or wss://), which the project's local proxy connects to instead of the
# region's endpoint; with TLS, the CA file that verifies it.
DATA_ENDPOINT_VARIABLE = "CDK_SECURE_TUNNEL_DATA_ENDPOINT"
DATA_CA_FILE_VARIABLE = "CDK_SECURE_TUNNEL_DATA_CA_FILE"

# Variables that would send boto3 elsewhere or make it ignore the endpoints set by environment().
UNSET_VARIABLES = (
    "AWS_ENDPOINT_URL",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
)


class LocalAws:
    """Starts the tunnel emulator and (unless ``secrets_manager=False``) moto's server, both on 127.0.0.1.

    ``environment()`` gives the variables that point boto3 (and anything using it) at them, and local
    proxies at the data plane. Clients cache their endpoint when created, so create clients after setting
    the variables. ``tls=True`` serves the data plane as ``wss://`` with a generated certificate.
    """

    def __init__(
        self,
        emulator: TunnelEmulator | None = None,
        *,
        region: str = "us-east-1",
        host: str = "127.0.0.1",
        tunneling_port: int = 0,
        secrets_manager_port: int = 0,
        secrets_manager: bool = True,
        data_port: int = 0,
        tls: bool = False,
    ) -> None:
        self.emulator = emulator or TunnelEmulator(region=region)
        self.region = region
        self._host = host
        self._tunneling_port = tunneling_port
        self._moto_port = secrets_manager_port
        self._with_moto = secrets_manager
        self._data_port = data_port
        self._tls = tls
        self._moto: ThreadedMotoServer | None = None
        self._moto_endpoint: str | None = None

    def start(self) -> "LocalAws":
        self.emulator.start(
            port=self._tunneling_port, host=self._host, data_port=self._data_port, tls=self._tls
        )
        if self._with_moto:
            from moto.server import ThreadedMotoServer  # noqa: PLC0415  (slow to import; optional extra)

            # Werkzeug, under moto's server, logs every request at INFO.
            logging.getLogger("werkzeug").setLevel(logging.WARNING)
            self._moto = ThreadedMotoServer(ip_address=self._host, port=self._moto_port, verbose=False)
            self._moto.start()
            host, port = self._moto.get_host_and_port()
            self._moto_endpoint = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self.emulator.stop()
        moto, self._moto, self._moto_endpoint = self._moto, None, None
        if moto is not None:
            moto.stop()

    def __enter__(self) -> "LocalAws":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def tunneling_endpoint(self) -> str:
        return self.emulator.endpoint

    @property
    def data_plane_url(self) -> str:
        """The data plane's ``ws://host:port`` (``wss://`` with TLS)."""
        return self.emulator.data_plane.url

    @property
    def data_plane_endpoint(self) -> str:
        """The data plane's ``host:port``, for the reference local proxy's ``-e``."""
        return self.emulator.data_plane.endpoint

    @property
    def secrets_manager_endpoint(self) -> str | None:
        """moto's URL, or None when started without Secrets Manager."""
        return self._moto_endpoint

    def environment(self) -> dict[str, str]:
        """The variables to set (fake credentials included) so boto3 clients use these local services."""
        variables = {"AWS_ENDPOINT_URL_IOTSECURETUNNELING": self.tunneling_endpoint}
        if self._moto_endpoint is not None:
            variables["AWS_ENDPOINT_URL_SECRETS_MANAGER"] = self._moto_endpoint
        variables[DATA_ENDPOINT_VARIABLE] = self.data_plane_url
        ca_file = self.emulator.data_plane.ca_file
        if ca_file is not None:
            variables[DATA_CA_FILE_VARIABLE] = ca_file
        variables |= {
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
            "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",  # AWS's documented example
        }
        return variables

    def reset(self) -> None:
        """Empty both services: the emulator's state and faults, and every moto backend."""
        self.emulator.reset()
        if self._moto_endpoint is not None:
            request = urllib.request.Request(f"{self._moto_endpoint}/moto-api/reset", method="POST")  # noqa: S310
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310  (our local http URL)
                response.read()
