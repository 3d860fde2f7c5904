"""The README's offline demo (``make demo``) runs: bytes through a tunnel with no AWS account."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_offline_demo_carries_bytes_through_a_tunnel() -> None:
    # A user's profile must not matter (nor exist): the demo and its device and connect processes use
    # local AWS only.
    environment = {**os.environ, "AWS_PROFILE": "nonexistent", "AWS_DEFAULT_PROFILE": "nonexistent"}
    completed = subprocess.run(
        [sys.executable, "examples/offline_demo.py"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "SSH  -> echo from the device: hello, gateway-12" in completed.stdout
    assert "HTTP -> <h1>gateway-12 status: OK</h1>" in completed.stdout
    assert "device exited with status 5" in completed.stdout
