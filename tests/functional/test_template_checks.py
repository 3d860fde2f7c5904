"""The example app passes cdk-nag's AwsSolutions rules with no acknowledgment of the user's, and cfn-lint."""

import json
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint


def test_cdk_nag_finds_nothing_unacknowledged(example_templates: dict[str, dict[str, Any]]) -> None:
    # build_app() applies AwsSolutionsChecks; synth raises ValidationFailed on any open finding.
    assert set(example_templates) == {
        "SshToExistingThing",
        "ThingWithOperatorRole",
        "ServicesWithKmsKey",
        "TunnelWithoutThing",
    }


@pytest.mark.parametrize(
    "stack_name", ["SshToExistingThing", "ThingWithOperatorRole", "ServicesWithKmsKey", "TunnelWithoutThing"]
)
def test_cfn_lint_reports_no_error(stack_name: str, example_templates: dict[str, dict[str, Any]]) -> None:
    matches = lint(json.dumps(example_templates[stack_name]), config=ManualArgs(regions=["us-east-1"]))
    errors = [f"{m.rule.id} {m.message} ({m.path})" for m in matches if m.rule.severity == "error"]
    assert errors == []
