"""The usage examples in the proxy's, the command's and the protocol's docstrings run."""

import doctest
import importlib
import pkgutil

import cdk_secure_tunnel.cli
import cdk_secure_tunnel.localproxy
import cdk_secure_tunnel.protocol
import pytest

PACKAGES = (cdk_secure_tunnel.protocol, cdk_secure_tunnel.localproxy, cdk_secure_tunnel.cli)
MODULES = sorted(
    f"{package.__name__}.{info.name}"
    for package in PACKAGES
    for info in pkgutil.iter_modules(package.__path__)
    if not info.name.startswith("_") and not info.name.endswith("_pb2")
) + [package.__name__ for package in PACKAGES]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
