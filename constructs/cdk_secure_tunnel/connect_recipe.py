"""The shell commands that connect an operator to a tunnel, for stack outputs and the README.

``SecureTunnel.connect_command()`` and ``SecureTunnel.localproxy_command()`` fill them in with the stack's
region and the source token secret's ARN (CDK tokens, resolved by CloudFormation). Two forms:

- this project's ``cdk-secure-tunnel connect``, which reads the token from the secret itself (and
  rotates the secret once if the service says the token is spent):

>>> operator = SourceConnection("eu-west-1", "arn:aws:secretsmanager:eu-west-1:1:secret:Source", ["SSH"])
>>> print(operator.cli_command())
cdk-secure-tunnel connect --region eu-west-1 --secret arn:aws:secretsmanager:eu-west-1:1:secret:Source
    --services SSH=5555

- the reference local proxy (``localproxy``), with the token read from the secret into its
  ``AWSIOT_TUNNEL_ACCESS_TOKEN``, never onto its command line (``-t`` would show it to every local user
  in ``ps``):

>>> print(operator.localproxy_command())
AWSIOT_TUNNEL_ACCESS_TOKEN="$(aws secretsmanager get-secret-value --region eu-west-1
    --secret-id arn:aws:secretsmanager:eu-west-1:1:secret:Source --query SecretString --output text
    | jq -r .clientAccessToken)" localproxy -r eu-west-1 -s SSH=5555

Several services listen on consecutive ports unless told otherwise. A device running AWS IoT Device
Client or the Greengrass secure tunneling component speaks only protocol V1, which carries one service:

>>> three = SourceConnection("us-east-1", "arn", ["SSH", "RDP", "HTTP"])
>>> three.localproxy_command().split("localproxy ")[1]
'-r us-east-1 -s SSH=5555,RDP=5556,HTTP=5557'
>>> device_client = SourceConnection("us-east-1", "arn", ["SSH"], destination_client_type="V1")
>>> device_client.localproxy_command().split("localproxy ")[1]
'-r us-east-1 -s 5555 --destination-client-type V1'

Nothing here imports aws-cdk-lib: the values may be plain strings or CDK string tokens.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

DEFAULT_FIRST_PORT = 5555
DESTINATION_CLIENT_TYPES = ("V1", "V2")
_MAX_PORT = 65535


def local_ports_for(services: Sequence[str], local_ports: Mapping[str, int] | None = None) -> dict[str, int]:
    """The local port per service: ``local_ports`` as given, checked, or consecutive ports from 5555."""
    if local_ports is None:
        return {service: DEFAULT_FIRST_PORT + index for index, service in enumerate(services)}
    if not isinstance(local_ports, Mapping) or set(local_ports) != set(services):
        raise ValueError(
            f"local_ports: got {local_ports!r}; "
            f"expected a port for each of the tunnel's services {list(services)}"
        )
    for service, port in local_ports.items():
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= _MAX_PORT:
            raise ValueError(
                f"local_ports: got {port!r} for {service!r}; expected a port from 1 to {_MAX_PORT}"
            )
    if len(set(local_ports.values())) != len(local_ports):
        raise ValueError(f"local_ports: got {dict(local_ports)!r}; each service needs a port of its own")
    return {service: local_ports[service] for service in services}


def listen_spec(
    services: Sequence[str] | None,
    local_ports: Mapping[str, int] | None = None,
    destination_client_type: str | None = None,
) -> str:
    """What both proxies take after ``-s``: ``SSH=5555,HTTP=5556``, or a bare port for one V1 service.

    ``services`` is None when they are known only at deploy (a list token): the single-port form
    ``5555`` then serves a tunnel's only service, as the reference proxy allows.
    """
    if destination_client_type is not None and destination_client_type not in DESTINATION_CLIENT_TYPES:
        raise ValueError(
            f"destination_client_type: got {destination_client_type!r}; expected one of "
            f"{list(DESTINATION_CLIENT_TYPES)}, or None for a V3 destination (the reference local proxy 3.x)"
        )
    if destination_client_type == "V1" and services is not None and len(services) > 1:
        raise ValueError(
            f"destination_client_type: got 'V1' for services {list(services)}; a V1 destination "
            "(AWS IoT Device Client, the Greengrass secure tunneling component) carries one service only"
        )
    if services is None:
        return str(DEFAULT_FIRST_PORT)
    ports = local_ports_for(services, local_ports)
    if destination_client_type == "V1":
        # V1 has no service ids: the reference proxy's own example for it is a bare port.
        return str(ports[services[0]])
    return ",".join(f"{service}={port}" for service, port in ports.items())


@dataclass(frozen=True)
class SourceConnection:
    """What an operator's proxy needs to connect: the tunnel's region, its source token secret, its
    services (None when known only at deploy) and the local side; each method gives one proxy's command.
    """

    region: str
    secret_arn: str
    services: Sequence[str] | None
    local_ports: Mapping[str, int] | None = None
    destination_client_type: str | None = None

    def cli_command(self) -> str:
        """The ``cdk-secure-tunnel connect`` command line."""
        command = (
            f"cdk-secure-tunnel connect --region {self.region} --secret {self.secret_arn} "
            f"--services {self._listen()}"
        )
        return command + self._client_type()

    def localproxy_command(self) -> str:
        """The reference ``localproxy`` command line in source mode, the token read into its environment."""
        read_token = (
            f"aws secretsmanager get-secret-value --region {self.region} --secret-id {self.secret_arn} "
            "--query SecretString --output text | jq -r .clientAccessToken"
        )
        command = (
            f'AWSIOT_TUNNEL_ACCESS_TOKEN="$({read_token})" localproxy -r {self.region} -s {self._listen()}'
        )
        return command + self._client_type()

    def _listen(self) -> str:
        return listen_spec(self.services, self.local_ports, self.destination_client_type)

    def _client_type(self) -> str:
        client_type = self.destination_client_type
        return f" --destination-client-type {client_type}" if client_type is not None else ""
