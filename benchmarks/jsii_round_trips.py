"""Counting the Python-to-Node.js round trips jsii makes: each construct call from Python is at least one.

On a machine where a round trip costs about 0.3 ms, their number explains most of a Python CDK app's
synthesis time, and unlike the time it does not vary with the machine's load.
"""

from collections import Counter
from typing import Any

from jsii._kernel.providers import process

_counts: Counter[str] = Counter()


def _kind(request: Any) -> str:
    """``Create aws-cdk-lib.CustomResource``, ``Invoke grantRead``, ``StaticInvoke aws-cdk-lib.Stack of``."""
    words = [type(request).__name__.removeprefix("_").removesuffix("Request")]
    words += [str(value) for name in ("fqn", "method", "property") if (value := getattr(request, name, None))]
    return " ".join(words)


def install() -> Counter[str]:
    """Count every request from now on, by kind; the counter is shared, clear it to start over.

    Counting costs about a microsecond per round trip of some 300, well below the timing noise.
    """
    send = process._NodeProcess.send
    if getattr(send, "counting", False):
        return _counts

    def counting_send(self: Any, request: Any, response_type: Any) -> Any:
        _counts[_kind(request)] += 1
        return send(self, request, response_type)

    counting_send.counting = True  # type: ignore[attr-defined]
    process._NodeProcess.send = counting_send  # type: ignore[method-assign]
    return _counts
