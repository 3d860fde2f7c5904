"""The contract's limits are the service's: checked against botocore's model of IoT Secure Tunneling."""

import re

import botocore.session
import pytest
from tunnel_lambda import contract
from tunnel_lambda.tunnel_spec import TunnelSpec

MODEL = botocore.session.get_session().get_service_model("iotsecuretunneling")


def _metadata(shape_name: str) -> dict[str, object]:
    return dict(MODEL.shape_for(shape_name).metadata)


def test_lifetime_limit_is_the_models() -> None:
    assert _metadata("TimeoutInMin") == {"min": 1, "max": contract.MAX_LIFETIME_MINUTES}


@pytest.mark.parametrize("shape", ["ThingName", "Service"])
def test_name_rule_is_the_models(shape: str) -> None:
    assert _metadata(shape) == {"min": 1, "max": contract.MAX_NAME_LENGTH, "pattern": contract.NAME_PATTERN}


def test_service_count_starts_at_the_models_minimum() -> None:
    # The model sets no maximum: three is a service quota applied at OpenTunnel (see contract.MAX_SERVICES).
    assert _metadata("ServiceList") == {"min": contract.MIN_SERVICES}
    assert contract.MAX_SERVICES == 3


def test_description_limit_is_the_models() -> None:
    pattern = _metadata("Description")["pattern"]
    assert isinstance(pattern, str)
    assert re.search(r"\{1,(\d+)\}", pattern).group(1) == str(contract.MAX_DESCRIPTION_LENGTH)  # type: ignore[union-attr]


def test_tag_limits_are_the_models() -> None:
    assert _metadata("TagList")["max"] == contract.MAX_TAGS
    assert _metadata("TagKey")["max"] == contract.MAX_TAG_KEY_LENGTH
    assert _metadata("TagValue")["max"] == contract.MAX_TAG_VALUE_LENGTH
    # At most one of replaces and renews: a tunnel is opened by an update or by renewal, never both.
    handlers = {
        contract.OWNER_STACK_TAG,
        contract.OWNER_RESOURCE_TAG,
        "replaces or renews",
        contract.BINDING_TAG,
        contract.REQUEST_TAG,
    }
    assert len(handlers) == contract.OWNER_TAG_COUNT


def test_the_handlers_tags_all_carry_its_reserved_prefix() -> None:
    tags = [
        contract.OWNER_STACK_TAG,
        contract.OWNER_RESOURCE_TAG,
        contract.REPLACES_TAG,
        contract.RENEWS_TAG,
        contract.BINDING_TAG,
        contract.REQUEST_TAG,
    ]
    assert all(tag.startswith(contract.HANDLER_TAG_PREFIX) for tag in [*tags, contract.RENEW_TAG])
    assert contract.HANDLER_TAG_PREFIX in contract.RESERVED_TAG_PREFIXES


def test_the_change_rules_name_fields_of_the_spec() -> None:
    fields = set(TunnelSpec.__dataclass_fields__)
    rules = (contract.FIELDS_THAT_REPLACE_THE_TUNNEL, contract.FIELDS_THAT_ROTATE_BOTH_TOKENS)
    assert all(set(rule) <= fields for rule in rules)
    assert not set(rules[0]) & set(rules[1])


def test_defaults_are_what_the_handler_assumes_for_a_missing_property() -> None:
    spec = TunnelSpec.from_properties({contract.Property.SOURCE_TOKEN_SECRET_ARN: "arn:src"})
    assert spec.services == contract.DEFAULT_SERVICES
    assert spec.max_lifetime_minutes == contract.DEFAULT_LIFETIME_MINUTES
