"""Shared test setup: a supported Node LTS for jsii, and templates synthesized once per session."""

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The project installs a supported Node LTS with npm (package.json); jsii starts whatever `node` is first
# on PATH, and an end-of-life Node prints a banner on every synth.
_NODE_BIN = ROOT / "node_modules" / ".bin"
if (_NODE_BIN / "node").exists():
    os.environ["PATH"] = f"{_NODE_BIN}{os.pathsep}{os.environ['PATH']}"


@pytest.fixture(scope="session")
def example_templates() -> dict[str, dict[str, Any]]:
    """Every example stack's template, synthesized once with cdk-nag's AwsSolutions checks applied."""
    from app import build_app  # noqa: PLC0415  (examples/app.py, imported once jsii has its Node)

    assembly = build_app().synth()
    return {stack.stack_name: stack.template for stack in assembly.stacks}


@pytest.fixture
def resources_of() -> Callable[[dict[str, Any], str], dict[str, Any]]:
    def resources(template: dict[str, Any], resource_type: str) -> dict[str, Any]:
        return {k: v for k, v in template["Resources"].items() if v["Type"] == resource_type}

    return resources
