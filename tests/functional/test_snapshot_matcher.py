"""The asset-hash matcher users get for their own snapshots (cdk_secure_tunnel.testing.snapshots)."""

import json
import re
from typing import Any

from cdk_secure_tunnel.testing import snapshots
from syrupy.extensions.json import JSONSnapshotExtension

_HASH = re.compile(r"[0-9a-f]{64}")


def _serialized(template: dict[str, Any]) -> str:
    return str(JSONSnapshotExtension().serialize(template, matcher=snapshots.normalize_assets))


def test_a_new_library_release_changes_no_snapshot(example_templates: dict[str, dict[str, Any]]) -> None:
    # A release changes the handler's code, so every asset hash in a user's template changes with it.
    template = example_templates["SshToExistingThing"]
    upgraded = json.loads(_HASH.sub(lambda m: m[0][::-1], json.dumps(template)))
    assert upgraded != template
    assert _serialized(upgraded) == _serialized(template)
    assert '"S3Key": "<asset-hash>.zip"' in _serialized(template)


def test_everything_but_asset_hashes_is_compared(example_templates: dict[str, dict[str, Any]]) -> None:
    template = example_templates["SshToExistingThing"]
    changed = json.loads(json.dumps(template).replace('"pump-7"', '"pump-8"'))
    assert _serialized(changed) != _serialized(template)


def test_asset_paths_in_metadata_and_lookalikes() -> None:
    digest = "ab" * 32
    assert snapshots.normalize_assets(f"asset.{digest}") == "asset.<asset-hash>"
    assert snapshots.normalize_assets(digest) == "<asset-hash>"
    # Only a whole value is a hash: a longer hex string, or one inside other text, is data.
    assert snapshots.normalize_assets(digest + "0") == digest + "0"
    assert snapshots.normalize_assets(f"s3://bucket/{digest}.zip") == f"s3://bucket/{digest}.zip"
    assert snapshots.normalize_assets(7) == 7
