"""Forced interleavings of two writers: the second runs inside a call of the first.

The handler's boto3 clients are shared by every invocation in the process, so a one-shot botocore event
hook on them runs another invocation at an exact point of the first, whatever the handler's structure.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from tunnel_lambda import aws_clients


@contextmanager
def interleaved(event_name: str, action: Callable[[], object]) -> Iterator[list[object]]:
    """Run ``action`` once, inside the handler's first call that emits the botocore event ``event_name``
    (such as ``after-call.iotsecuretunneling.OpenTunnel``): a forced interleaving of two writers.

    Yields the list that receives the action's result.
    """
    service = event_name.split(".")[1]
    client = aws_clients.tunneling() if service == "iotsecuretunneling" else aws_clients.secrets()
    results: list[object] = []
    fired = False

    def hook(**_: Any) -> None:
        nonlocal fired
        if not fired:
            fired = True
            results.append(action())

    client.meta.events.register(event_name, hook, unique_id="interleaved")
    try:
        yield results
    finally:
        client.meta.events.unregister(event_name, unique_id="interleaved")
