"""SSH to a device that is already registered in AWS IoT as the thing ``pump-7``.

AWS IoT delivers the destination token to the device over MQTT; the operator reads the source token
from the secret, and gets a fresh one with ``aws secretsmanager rotate-secret`` after each session (a
token connects only once). Tokens also rotate every 8 hours, and ``renew`` opens a new two-hour tunnel
before each one ends, so the device stays reachable for as long as the stack exists.
"""

from aws_cdk import Duration, Stack
from cdk_secure_tunnel import SecureTunnel
from tunnel_outputs import add_tunnel_outputs

from constructs import Construct


class SshToExistingThingStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, thing_name: str = "pump-7") -> None:
        super().__init__(
            scope, construct_id, description="SSH through an IoT secure tunnel to an existing thing"
        )
        tunnel = SecureTunnel(
            self,
            "Maintenance",
            thing=thing_name,
            services=["SSH"],
            max_lifetime=Duration.hours(2),
            rotate_every=Duration.hours(8),
            renew=True,
        )
        add_tunnel_outputs(self, tunnel)
