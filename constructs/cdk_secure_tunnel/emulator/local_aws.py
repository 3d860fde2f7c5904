"""A whole local AWS for the construct's code: the tunnel emulator (control and data plane) plus moto's
Secrets Manager.

>>> import boto3
>>> with LocalAws() as aws, aws.environment_applied():
...     tunnel_id = boto3.client("iotsecuretunneling").open_tunnel()["tunnelId"]
...     secrets = boto3.client("secretsmanager")
...     arn = secrets.create_secret(Name="example-token", SecretString="s3cret")["ARN"]
...     value = secrets.get_secret_value(SecretId=arn)["SecretString"]
...     aws.reset()
>>> aws.emulator.tunnels(), value
([], 's3cret')
"""

import contextlib
import logging
import os
import urllib.request
from collections.abc import Iterator, Mapping
from importlib import import_module
from typing import TYPE_CHECKING

from tunnel_lambda.contract import UPKEEP_CONSTRUCT_ID, UPKEEP_HANDLER

from ..protocol.handshake import DATA_CA_FILE_VARIABLE, DATA_ENDPOINT_VARIABLE
from . import secrets_manager as local_secrets_manager
from .control_plane import TunnelEmulator

if TYPE_CHECKING:
    from moto.server import ThreadedMotoServer

# Variables that would send boto3 elsewhere or make it ignore the endpoints set by environment(): a profile
# (which must exist, and may name other endpoints, credentials or a role), a session token that would go
# with the fake keys, endpoint settings for every service, and endpoint variants.
UNSET_VARIABLES = (
    "AWS_ENDPOINT_URL",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_USE_DUALSTACK_ENDPOINT",
)
# The upkeep function of any stack (a deployed function's name starts with its logical id).
UPKEEP_FUNCTIONS = f"arn:aws:lambda:*:*:function:*{UPKEEP_CONSTRUCT_ID}*"
# What the rotation function reaches through the environment: it must be this LocalAws.
_ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_IOTSECURETUNNELING", "AWS_ENDPOINT_URL_SECRETS_MANAGER")


class LocalAws:
    """Starts the tunnel emulator and (unless ``secrets_manager=False``) moto's server, both on 127.0.0.1.

    ``environment()`` gives the variables that point boto3 (and anything using it) at them, and local
    proxies at the data plane; ``environment_applied()`` sets them for a ``with`` block. Clients cache
    their endpoint when created, so create clients after setting the variables. ``tls=True`` serves the
    data plane as ``wss://`` with a generated certificate.

    Secrets Manager rotates a secret whose rotation function is a stack's upkeep function (as
    ``LocalCloudFormation`` configures it) by running that function in this process, with this process's
    environment: apply ``environment()`` here first (the pytest fixtures and
    ``python -m cdk_secure_tunnel.testing`` do).
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
        # Kept: unregistering compares the very function registered.
        self._upkeep = self._run_upkeep

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
            local_secrets_manager.install()
            local_secrets_manager.register_rotation_function(UPKEEP_FUNCTIONS, self._upkeep)
        return self

    def stop(self) -> None:
        local_secrets_manager.unregister_rotation_function(UPKEEP_FUNCTIONS, self._upkeep)
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
            # No config or credentials file: a profile there could set ignore_configured_endpoint_urls,
            # endpoints or credential processes that reach real AWS.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }
        return variables

    @contextlib.contextmanager
    def environment_applied(self) -> Iterator[dict[str, str]]:
        """Point this process at these services for the ``with`` block, and put everything back after.

        Sets ``environment()``, unsets ``UNSET_VARIABLES`` (profiles, session tokens, other endpoints),
        and starts boto3's default session afresh; on exit, even by an exception, every variable and
        the default session are as they were, so nothing names a port that has closed. Clients cache
        their endpoint: create them inside the block. The environment is the whole process's, so
        threads that use AWS elsewhere see it too.

        >>> import boto3
        >>> before = dict(os.environ)
        >>> with LocalAws(secrets_manager=False) as aws, aws.environment_applied():
        ...     boto3.client("iotsecuretunneling").list_tunnels()["tunnelSummaries"]
        []
        >>> dict(os.environ) == before
        True
        """
        variables = self.environment()
        saved = {name: os.environ.get(name) for name in (*variables, *UNSET_VARIABLES)}
        import boto3  # noqa: PLC0415  (slow to import; only this method needs it)

        saved_session = boto3.DEFAULT_SESSION
        for name in UNSET_VARIABLES:
            os.environ.pop(name, None)
        os.environ.update(variables)
        boto3.DEFAULT_SESSION = None  # its profile, credentials and config were read from before
        try:
            yield variables
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            boto3.DEFAULT_SESSION = saved_session

    def _run_upkeep(self, event: Mapping[str, str]) -> None:
        """A stack's upkeep function, invoked for a rotation step: the packaged handler, run here."""
        expected = self.environment()
        if any(os.environ.get(name) != expected.get(name) for name in _ENDPOINT_VARIABLES):
            # Anything else could send the handler's calls to real AWS.
            raise RuntimeError(
                "the upkeep function runs in the process serving local AWS, whose environment does not "
                "point at it: apply LocalAws.environment() there first (LocalAws.environment_applied())"
            )
        module, _, function = UPKEEP_HANDLER.rpartition(".")
        getattr(import_module(module), function)(event)

    def reset(self) -> None:
        """Empty both services: the emulator's state and faults, and every moto backend."""
        self.emulator.reset()
        if self._moto_endpoint is not None:
            request = urllib.request.Request(f"{self._moto_endpoint}/moto-api/reset", method="POST")  # noqa: S310
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310  (our local http URL)
                response.read()
