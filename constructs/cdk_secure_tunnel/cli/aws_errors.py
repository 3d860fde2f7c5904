"""botocore's own failures (no credentials, a missing profile, no region, an endpoint out of reach) and AWS's
refusals (a ``ClientError``: access denied, throttled, ...) as the command's errors: a message saying what
is wrong and what to do, and an exit status, never a traceback.

botocore is imported only by the commands that read secrets (the device's distribution may lack it), so
an exception can be one of its errors only if its module is loaded already.

>>> from botocore.exceptions import ClientError, NoRegionError
>>> error = explained(NoRegionError())
>>> int(error.exit_code), str(error).startswith("AWS: no region is set")
(2, True)
>>> denied = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not you"}}, "ListSecrets")
>>> print(explained(denied))  # doctest: +NORMALIZE_WHITESPACE
AWS: ListSecrets was refused (AccessDeniedException): not you; check the permissions of the identity in
use (`aws sts get-caller-identity` names it)
>>> int(explained(denied).exit_code)
2
>>> explained(ValueError("not botocore's")) is None
True
"""

import sys
from typing import Any

from ..localproxy.errors import ConfigurationError, LocalProxyError, NotFound, Unreachable

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


# AWS's refusals by error code: (the error's kind, what to tell the user). Denials and rejected
# credentials are the caller's AWS set-up (exit 2, with missing credentials); throttling and the service's
# own failures outlasted botocore's retries (exit 6); any other refusal is exit 1.
_DENIAL_CODES = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation")
_RETRY_LATER = (Unreachable, "try again later")
_REFUSALS: dict[str, tuple[type[LocalProxyError], str]] = {
    **dict.fromkeys(
        _DENIAL_CODES,
        (
            ConfigurationError,
            "check the permissions of the identity in use (`aws sts get-caller-identity` names it)",
        ),
    ),
    **dict.fromkeys(
        (
            "UnrecognizedClientException",
            "InvalidClientTokenId",
            "ExpiredToken",
            "ExpiredTokenException",
            "InvalidSignatureException",
            "SignatureDoesNotMatch",
        ),
        (ConfigurationError, f"AWS rejects the credentials; {_CREDENTIALS}"),
    ),
    "ResourceNotFoundException": (NotFound, "check the name or ARN and the region"),
    **dict.fromkeys(
        (
            "Throttling",
            "ThrottlingException",
            "TooManyRequestsException",
            "RequestLimitExceeded",
            "ServiceUnavailable",
            "ServiceUnavailableException",
            "InternalFailure",
            "InternalServiceError",
            "InternalServerError",
        ),
        _RETRY_LATER,
    ),
}


def _response(error: BaseException) -> dict[str, Any]:
    response = getattr(error, "response", None)
    return response if isinstance(response, dict) else {}


def error_code(error: BaseException) -> str:
    """The code of AWS's refusal (a botocore ``ClientError``), "" for anything else."""
    return str(_response(error).get("Error", {}).get("Code", ""))


def error_message(error: BaseException) -> str:
    """AWS's message for a refusal, on one line (else the error's own text)."""
    return " ".join(str(_response(error).get("Error", {}).get("Message", "") or error).split())


def is_denied(error: BaseException) -> bool:
    """Whether AWS refused the call for want of a permission."""
    return error_code(error) in _DENIAL_CODES


def refused(error: BaseException, what: str, advice: str | None = None) -> LocalProxyError:
    """AWS's refusal ``error`` as the command's error: ``what`` failed, with AWS's code and message, then
    ``advice`` (default: what to do about that code); its kind, and so its exit status, by the code (an
    unknown code with a 5xx status is the service's failure, worth trying again)."""
    code = error_code(error)
    kind, default = _REFUSALS.get(code, (LocalProxyError, ""))
    status = _response(error).get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code not in _REFUSALS and isinstance(status, int) and status >= 500:
        kind, default = _RETRY_LATER
    advice = default if advice is None else advice
    return kind(
        f"{what} ({code or f'HTTP {status}'}): {error_message(error)}" + (f"; {advice}" if advice else "")
    )


def explained(error: BaseException) -> LocalProxyError | None:
    """``error`` as the command's error if it is one of botocore's own (``BotoCoreError``) or AWS's refusal
    (``ClientError``), else None."""
    exceptions = sys.modules.get("botocore.exceptions")
    if exceptions is None:
        return None
    if isinstance(error, exceptions.ClientError):
        return refused(error, f"AWS: {error.operation_name} was refused")
    if not isinstance(error, exceptions.BotoCoreError):
        return None
    for kind in type(error).__mro__:
        if kind.__name__ in _ADVICE:
            error_type, advice = _ADVICE[kind.__name__]
            return error_type(f"{advice} ({error})")
    return LocalProxyError(f"AWS: {error}")
