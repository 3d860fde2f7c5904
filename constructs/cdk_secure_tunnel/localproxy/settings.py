"""A local proxy's settings: the service mapping, the endpoint, and how it connects and retries.

Mappings use the reference proxy's ``-s``/``-d`` syntax: ``SSH=5555,HTTP=8080``, or a lone port (or
``host:port``) for a tunnel with one service. ``""`` keys that lone, still unnamed service.

>>> parse_services("SSH=5555,HTTP=localhost:8080")
{'SSH': Target(host=None, port=5555), 'HTTP': Target(host='localhost', port=8080)}
>>> parse_services("22")
{'': Target(host=None, port=22)}
>>> data_endpoint(region="cn-north-1", environ={})
'wss://data.tunneling.iot.cn-north-1.amazonaws.com.cn:443'
>>> data_endpoint(endpoint="127.0.0.1:8443", environ={})
'wss://127.0.0.1:8443'
"""

import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from ..protocol.handshake import CLIENT_TOKEN_PATTERN, DATA_ENDPOINT_VARIABLE, MODES, Mode, endpoint
from .errors import ConfigurationError

# The reference proxy's variables, honoured so that its users' habits carry over.
REFERENCE_ENDPOINT_VARIABLE = "AWSIOT_TUNNEL_ENDPOINT"
REFERENCE_REGION_VARIABLE = "AWSIOT_TUNNEL_REGION"
# AWS's own region variables, in the order the AWS CLI v2 and most SDKs read them (boto3 itself reads only
# the second, and the profile's region).
AWS_REGION_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION")
TOKEN_VARIABLE = "AWSIOT_TUNNEL_ACCESS_TOKEN"  # noqa: S105  (a variable's name)
CLIENT_TOKEN_VARIABLE = "AWSIOT_TUNNEL_CLIENT_TOKEN"  # noqa: S105

DEFAULT_BIND_ADDRESS = "127.0.0.1"
# What the tunnel's services are called: the service's pattern for names (botocore's model, Service).
_SERVICE_NAME = re.compile(r"[a-zA-Z0-9:_-]{1,128}")
_MAX_PORT = 65535

Version = Literal[1, 2, 3]
_CLIENT_TYPES: dict[str, Version] = {"V1": 1, "V2": 2, "V3": 3}


class Target(NamedTuple):
    """Where a service goes: a port to listen on (source) or a host and port to connect to (destination).

    ``host`` None means the default (the bind address for a source, localhost for a destination); port 0
    on a source lets the system choose one.
    """

    host: str | None
    port: int


def _port(text: str, item: str, *, allow_zero: bool) -> int:
    low = 0 if allow_zero else 1
    if not text.isdigit() or not low <= int(text) <= _MAX_PORT:
        raise ConfigurationError(
            f"services: got {item!r}; the port must be a number from {low} to {_MAX_PORT}"
        )
    return int(text)


def _target(text: str, item: str, *, allow_zero: bool) -> Target:
    host, colon, port = text.rpartition(":")
    if not colon:
        return Target(None, _port(text, item, allow_zero=allow_zero))
    if not host:
        raise ConfigurationError(f"services: got {item!r}; expected host:port with a host before the colon")
    return Target(host.strip("[]"), _port(port, item, allow_zero=allow_zero))


def parse_services(text: str, *, allow_zero: bool = False) -> dict[str, Target]:
    """``SSH=5555,HTTP=host:8080`` (or one unnamed ``5555``/``host:22``) as a mapping.

    A source may pass ``allow_zero`` so that ``SSH=0`` asks the system for a free port.
    """
    services: dict[str, Target] = {}
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ConfigurationError(f"services: got {text!r}; expected NAME=PORT[,NAME=PORT...] or one PORT")
    for item in items:
        name, equals, where = item.partition("=")
        if not equals:
            if len(items) > 1:
                raise ConfigurationError(
                    f"services: got {text!r}; with several services each needs its name (SSH=5555,HTTP=8080)"
                )
            name, where = "", item
        elif not _SERVICE_NAME.fullmatch(name):
            raise ConfigurationError(
                f"services: got service name {name!r}; expected 1-128 characters of [a-zA-Z0-9:_-]"
            )
        if name in services:
            raise ConfigurationError(f"services: got {name!r} twice; each service may appear once")
        services[name] = _target(where, item, allow_zero=allow_zero)
    return services


def tunnel_region(*given: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The tunnel's region: the first of ``given`` that is set (an explicit region, then the token's), else
    $AWSIOT_TUNNEL_REGION (the reference proxy's variable), else $AWS_REGION, else $AWS_DEFAULT_REGION.

    >>> tunnel_region(None, "eu-west-1", environ={"AWS_REGION": "us-east-1"})
    'eu-west-1'
    >>> tunnel_region(None, None, environ={"AWS_DEFAULT_REGION": "us-east-2", "AWS_REGION": "us-east-1"})
    'us-east-1'
    """
    env = os.environ if environ is None else environ
    settings = (REFERENCE_REGION_VARIABLE, *AWS_REGION_VARIABLES)
    return next((region for region in (*given, *map(env.get, settings)) if region), None)


def data_endpoint(
    *, endpoint: str | None = None, region: str | None = None, environ: Mapping[str, str] | None = None
) -> str:
    """The data plane URL: ``endpoint`` if given, else $CDK_SECURE_TUNNEL_DATA_ENDPOINT (local testing),
    else $AWSIOT_TUNNEL_ENDPOINT, else the endpoint of ``region`` (else ``tunnel_region``'s: from
    $AWSIOT_TUNNEL_REGION, $AWS_REGION or $AWS_DEFAULT_REGION).

    An endpoint without a scheme gets ``wss://``; ``ws://`` (no TLS) is for local emulators only.
    """
    env = os.environ if environ is None else environ
    explicit = endpoint or env.get(DATA_ENDPOINT_VARIABLE) or env.get(REFERENCE_ENDPOINT_VARIABLE)
    if explicit:
        explicit = explicit.rstrip("/")
        if "://" not in explicit:
            return f"wss://{explicit}"
        if not explicit.startswith(("ws://", "wss://")):
            raise ConfigurationError(f"endpoint: got {explicit!r}; expected wss://host[:port] or host[:port]")
        return explicit
    region = tunnel_region(region, environ=env)
    if not region:
        raise ConfigurationError(
            "endpoint: neither a region nor an endpoint was given; pass --region (where the tunnel was "
            f"opened) or --endpoint, or set ${REFERENCE_REGION_VARIABLE} or $AWS_REGION"
        )
    return endpoint_of(region)


def endpoint_of(region: str) -> str:
    if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", region):
        raise ConfigurationError(f"region: got {region!r}; expected a region name such as eu-west-1")
    return endpoint(region)


def new_client_token() -> str:
    """A fresh client token (a UUID4: the guides' recommendation; unique across the account's tunnels)."""
    return str(uuid.uuid4())


@dataclass(frozen=True)
class RetryPolicy:
    """Reconnect after network errors and 5xx answers: exponential backoff from ``initial`` seconds,
    doubling up to ``maximum``, each delay drawn between half and all of that (jitter), for at most
    ``attempts`` tries in a row (None: forever, as the reference proxy does). 4xx answers are never retried.
    """

    initial: float = 1.0
    maximum: float = 30.0
    attempts: int | None = None

    def delay(self, attempt: int, random: float) -> float:
        """The wait before retry number ``attempt`` (1-based), for ``random`` uniform in [0, 1)."""
        ceiling = min(self.maximum, self.initial * 2.0 ** (attempt - 1))
        return ceiling * (0.5 + random / 2)


@dataclass(frozen=True)
class ProxySettings:
    """Everything one local proxy needs. The token stays out of ``repr`` (and so out of logs and tracebacks).

    - ``mode``: ``source`` listens on local ports; ``destination`` connects to local services.
    - ``services``: the mapping (see ``parse_services``); a source may leave services out, which then
      listen on free ports.
    - ``version``: the protocol spoken; a source talking to a V1 device (AWS IoT Device Client,
      Greengrass) needs 1. ``destination_client_type="V1"`` (or ``"V2"``) says the same in the reference
      proxy's words (``--destination-client-type V1``), for a source only.
    - ``client_token``: sent with the handshake so a dropped connection can reconnect with the same
      access token (None: send none, and the token is spent by the first connection).
    """

    mode: Mode
    access_token: str = field(repr=False)
    endpoint: str
    services: Mapping[str, Target] = field(default_factory=dict)
    version: Version = 3
    client_token: str | None = field(default_factory=new_client_token, repr=False)
    bind_address: str = DEFAULT_BIND_ADDRESS
    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # TLS: the system's CAs plus those in ``capath`` and ``cafile``; host verification off only when
    # asked (dev/test).
    capath: str | None = None
    cafile: str | None = None
    verify_host: bool = True
    # How long to wait for the service's SERVICE_IDS before using the mapping as given.
    service_ids_timeout: float = 5.0
    destination_client_type: Literal["V1", "V2", "V3"] | None = None

    def __post_init__(self) -> None:
        if self.destination_client_type is not None:
            if self.mode != "source" or self.destination_client_type not in _CLIENT_TYPES:
                raise ConfigurationError(
                    f"destination_client_type: got {self.destination_client_type!r} for a {self.mode}; "
                    "a source takes V1, V2 or V3"
                )
            object.__setattr__(self, "version", _CLIENT_TYPES[self.destination_client_type])
        if self.mode not in MODES:
            raise ConfigurationError(f"mode: got {self.mode!r}; expected one of {', '.join(MODES)}")
        if not self.access_token:
            raise ConfigurationError(
                f"access token: none given; it comes from a secret, a notify payload or ${TOKEN_VARIABLE}"
            )
        if self.version not in (1, 2, 3):
            raise ConfigurationError(f"version: got {self.version!r}; expected 1, 2 or 3")
        if self.client_token is not None and not CLIENT_TOKEN_PATTERN.fullmatch(self.client_token):
            raise ConfigurationError(
                "client token: expected 32-128 characters of [a-zA-Z0-9-] (the service's pattern)"
            )
        if self.mode == "destination" and not self.services:
            raise ConfigurationError("services: a destination needs where each service goes, e.g. SSH=22")
        if self.version == 1 and len(self.services) > 1:
            raise ConfigurationError(
                f"services: got {len(self.services)} with protocol V1, which carries one service only; "
                "map just one (e.g. --services 5555)"
            )
