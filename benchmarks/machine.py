"""The facts of the machine and toolchain a run's figures belong to."""

import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib.metadata import version

from .measure import child_environment


def _node_version() -> str:
    try:
        completed = subprocess.run(
            ["node", "--version"], capture_output=True, text=True, env=child_environment(), check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "not found"
    return completed.stdout.strip()


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def facts() -> dict[str, str]:
    return {
        "Date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "CPUs": f"{os.cpu_count()} x {_cpu_model()}",
        "Load average at start": " ".join(f"{load:.2f}" for load in os.getloadavg()),
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "Node.js": _node_version(),
        "aws-cdk-lib": version("aws-cdk-lib"),
        "jsii": version("jsii"),
        "boto3 / botocore": f"{version('boto3')} / {version('botocore')}",
    }
