"""botocore's own failures (no credentials, a missing profile, no region, an endpoint out of reach) as the
command's errors: a message saying what is wrong and what to do, and an exit status, never a traceback.

botocore is imported only by the commands that read secrets (the device's distribution may lack it), so
an exception can be one of its errors only if its module is loaded already.

>>> from botocore.exceptions import NoRegionError
>>> error = explained(NoRegionError())
>>> int(error.exit_code), str(error).startswith("AWS: no region is set")
(2, True)
>>> explained(ValueError("not botocore's")) is None
True
"""

import sys

from ..localproxy.errors import ConfigurationError, LocalProxyError, Unreachable

_CREDENTIALS = (
    "set them up with `aws configure` (or `aws sso login`), AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
    "AWS_PROFILE naming a profile that has them"
)
# By botocore's class name, most specific first (subclasses are matched through their MRO). Each is
# (the error's kind, what to tell the user); the detail botocore gives follows.
_ADVICE: dict[str, tuple[type[LocalProxyError], str]] = {
    "NoCredentialsError": (ConfigurationError, f"AWS: no credentials found; {_CREDENTIALS}"),
    "PartialCredentialsError": (ConfigurationError, f"AWS: the credentials are incomplete; {_CREDENTIALS}"),
    "ProfileNotFound": (
        ConfigurationError,
        "AWS: the profile does not exist; check AWS_PROFILE against `aws configure list-profiles`, or "
        "unset it",
    ),
    "NoRegionError": (
        ConfigurationError,
        "AWS: no region is set; pass --region, set AWS_REGION (or AWS_DEFAULT_REGION), or give the "
        "secret's full ARN (it names its region)",
    ),
    "ConfigParseError": (ConfigurationError, "AWS: the config file cannot be read; fix or move it"),
    "TokenRetrievalError": (ConfigurationError, f"AWS: the SSO session has expired; {_CREDENTIALS}"),
    "SSOError": (ConfigurationError, f"AWS: the SSO session cannot be used; {_CREDENTIALS}"),
    "CredentialRetrievalError": (
        ConfigurationError,
        f"AWS: the credentials cannot be fetched; {_CREDENTIALS}",
    ),
    "EndpointConnectionError": (
        Unreachable,
        "AWS: the endpoint cannot be reached; check the network (proxy, VPN), the region and any "
        "AWS_ENDPOINT_URL* variable",
    ),
    "ConnectTimeoutError": (
        Unreachable,
        "AWS: connecting to the endpoint timed out; check the network (proxy, VPN) and the region",
    ),
    "ReadTimeoutError": (Unreachable, "AWS: the endpoint did not answer in time; try again"),
    "ConnectionClosedError": (Unreachable, "AWS: the endpoint closed the connection; try again"),
    "SSLError": (
        Unreachable,
        "AWS: TLS to the endpoint failed; check AWS_CA_BUNDLE and any TLS-intercepting proxy",
    ),
    "ProxyConnectionError": (Unreachable, "AWS: the HTTPS proxy cannot be reached; check HTTPS_PROXY"),
}


def explained(error: BaseException) -> LocalProxyError | None:
    """``error`` as the command's error if it is one of botocore's own (``BotoCoreError``), else None."""
    exceptions = sys.modules.get("botocore.exceptions")
    if exceptions is None or not isinstance(error, exceptions.BotoCoreError):
        return None
    for kind in type(error).__mro__:
        if kind.__name__ in _ADVICE:
            error_type, advice = _ADVICE[kind.__name__]
            return error_type(f"{advice} ({error})")
    return LocalProxyError(f"AWS: {error}")
