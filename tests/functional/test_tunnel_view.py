"""What a test sees of a tunnel: TunnelView shows everything but its tokens when printed."""

from typing import Any

import boto3


def test_printing_a_tunnel_shows_no_token(local_aws: Any, tunnel_emulator: Any) -> None:
    client = boto3.client("iotsecuretunneling")
    opened = client.open_tunnel(destinationConfig={"thingName": "pump-7", "services": ["SSH"]})
    client.rotate_tunnel_access_token(tunnelId=opened["tunnelId"], clientMode="SOURCE")
    view = tunnel_emulator.tunnel(opened["tunnelId"])
    tokens = {view.source_token, view.destination_token, *view.revoked_tokens, opened["sourceAccessToken"]}
    assert len(tokens) == 3
    # Failed assertions, logs and debuggers print reprs: a token there is a token leaked into CI logs.
    for printed in (repr(view), str(view), f"{view}", repr([view])):
        assert not any(token in printed for token in tokens), printed
    assert opened["tunnelId"] in repr(view)
    assert "pump-7" in repr(view)
