"""``make demo``: from ``cdk deploy`` to bytes through a tunnel, offline, with no AWS account.

1. Local AWS starts: the project's emulator of AWS IoT Secure Tunneling (control and data plane) and
   moto's Secrets Manager, all on 127.0.0.1.
2. The ThingWithOperatorRole example is synthesized and deployed to it with LocalCloudFormation: the
   SecureTunnel "Maintenance" opens a tunnel to thing gateway-12 for SSH and HTTP, and its source token
   goes to a secret. AWS IoT's notify message for the thing is saved to notify.json.
3. The device side: ``cdk-secure-tunnel device --notify notify.json`` forwards SSH to a local echo
   server (standing in for sshd) and HTTP to a local web server.
4. The operator side: ``cdk-secure-tunnel connect --stack ThingWithOperatorRole --tunnel Maintenance --
   <client>`` finds the secret by the stack's tags, listens locally, and runs a client through both.
5. The stack is destroyed: the tunnel closes and the device exits.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from aws_cdk import App
from aws_cdk.assertions import Template
from cdk_secure_tunnel.testing import LocalAws, LocalCloudFormation, serving_device_services
from thing_with_operator_role import ThingWithOperatorRoleStack

STACK = "ThingWithOperatorRole"
CLIENT = """
import socket, sys, urllib.request
ssh, web = int(sys.argv[1]), int(sys.argv[2])
with socket.create_connection(("127.0.0.1", ssh), timeout=10) as connection:
    connection.sendall(b"hello, gateway-12")
    print("  SSH  ->", connection.recv(1024).decode())
print("  HTTP ->", urllib.request.urlopen(f"http://127.0.0.1:{web}/", timeout=10).read().decode())
"""


def step(message: str) -> None:
    print(f"== {message}", flush=True)


def main() -> int:
    command = [sys.executable, "-m", "cdk_secure_tunnel.cli"]
    # environment_applied(), not os.environ.update(environment()): it also unsets what would send boto3
    # elsewhere (AWS_PROFILE, which must name an existing profile, among them).
    with (
        LocalAws() as aws,
        aws.environment_applied(),
        tempfile.TemporaryDirectory() as work,
        serving_device_services(b"<h1>gateway-12 status: OK</h1>", b"echo from the device: ") as services,
    ):
        applied = dict(os.environ)  # the device and connect processes run against this local AWS too
        step(
            f"local AWS: tunneling {aws.tunneling_endpoint}, data plane {aws.data_plane_url}, "
            f"Secrets Manager {aws.secrets_manager_endpoint}"
        )
        step(f"deploying {STACK} (SecureTunnel 'Maintenance': thing gateway-12, services SSH and HTTP)")
        app = App()
        template = Template.from_stack(ThingWithOperatorRoleStack(app, STACK)).to_json()
        cloudformation = LocalCloudFormation(STACK)
        cloudformation.deploy(template)
        notify = Path(work) / "notify.json"
        notify.write_text(json.dumps(aws.emulator.notifications("gateway-12")[-1]))
        destination = f"SSH={services['SSH']},HTTP={services['HTTP']}"
        device_command = ["device", "--notify", str(notify), "--destination", destination]
        step("device:   cdk-secure-tunnel " + " ".join(device_command))
        device = subprocess.Popen([*command, *device_command], env=applied)  # noqa: S603  (our own command)
        connect_command = [
            "connect",
            "--stack",
            STACK,
            "--tunnel",
            "Maintenance",
            "--",
            sys.executable,
            "-c",
            "<client>",
            "{SSH}",
            "{HTTP}",
        ]
        step("operator: cdk-secure-tunnel " + " ".join(connect_command))
        connect_command[-3] = CLIENT
        status = subprocess.call([*command, *connect_command], env=applied)  # noqa: S603  (our own command)
        step(f"connect exited with status {status}; destroying the stack closes the tunnel")
        cloudformation.destroy()
        device_status = device.wait(30)
        step(f"device exited with status {device_status} (5: the tunnel closed)")
        return status


if __name__ == "__main__":
    sys.exit(main())
