"""Snapshot tests of stacks that use SecureTunnel, stable across library upgrades.

A template names its Lambda code by asset hash: this library's handler and upkeep functions, and the CDK
provider framework's, change hash with every release of cdk-secure-tunnel or aws-cdk-lib, so a raw
snapshot of your stack would break on each upgrade. ``normalize_assets`` is a syrupy matcher that puts a
placeholder where an asset hash is (an ``S3Key`` such as ``<sha256>.zip``, or an ``asset.<sha256>`` path
in asset metadata); everything else in the template is compared as it is::

    from aws_cdk.assertions import Template
    from cdk_secure_tunnel.testing.snapshots import normalize_assets
    from syrupy.extensions.json import JSONSnapshotExtension

    def test_my_stack(snapshot):
        template = Template.from_stack(MyStack(App(), "MyStack")).to_json()
        assert template == snapshot(extension_class=JSONSnapshotExtension, matcher=normalize_assets)

It works on any value, so it can be tried without syrupy:

>>> normalize_assets("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08.zip")
'<asset-hash>.zip'
>>> normalize_assets("asset.9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
'asset.<asset-hash>'
>>> normalize_assets({"S3Key": "x.zip"})  # syrupy calls it for every value, dicts included
{'S3Key': 'x.zip'}
"""

import re
from typing import Any

ASSET_HASH_PLACEHOLDER = "<asset-hash>"
# The CDK fingerprints assets with SHA-256 and names them by the hex digest: the digest is the whole value.
_ASSET_HASH = re.compile(r"^(?P<prefix>asset\.)?[0-9a-f]{64}(?P<suffix>\.zip)?$")


def normalize_assets(data: Any, path: Any = None) -> Any:
    """A syrupy matcher replacing asset hashes by ``<asset-hash>``; every other value is returned as is.

    ``path`` is syrupy's location of the value in the snapshot, unused: an asset hash is recognized by
    its form wherever it is.
    """
    if isinstance(data, str):
        match = _ASSET_HASH.match(data)
        if match:
            return f"{match['prefix'] or ''}{ASSET_HASH_PLACEHOLDER}{match['suffix'] or ''}"
    return data
