"""``python -m cdk_secure_tunnel.cli``: the same as the ``cdk-secure-tunnel`` command."""

from . import console

if __name__ == "__main__":
    console()
