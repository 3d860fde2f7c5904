"""The command runs without aws_cdk or jsii: a device has no Node.js (test_layout checks the imports)."""

import subprocess
import sys

CHECK = """
import sys
import cdk_secure_tunnel.localproxy, cdk_secure_tunnel.cli, cdk_secure_tunnel.protocol
from cdk_secure_tunnel.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
loaded = sorted(name for name in sys.modules if name.split(".")[0] in ("aws_cdk", "jsii", "constructs"))
print("LOADED", loaded)
"""


def _loaded(argv: list[str]) -> str:
    completed = subprocess.run(
        [sys.executable, "-c", CHECK.format(argv=argv)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return completed.stdout.strip().splitlines()[-1]


def test_device_help_and_the_library_load_no_cdk() -> None:
    assert _loaded(["device", "--help"]) == "LOADED []"


def test_connect_help_loads_no_cdk() -> None:
    assert _loaded(["connect", "--help"]) == "LOADED []"
