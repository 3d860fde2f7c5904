"""Errors the emulator answers with, as the JSON 1.1 protocol carries them.

The service model gives its exceptions no HTTP status, so they take the protocol's default for client
faults, 400, like the common errors botocore's retry handler looks for (its legacy mode matches
``ThrottlingException`` only together with status 400).
"""

# Statuses AWS uses for the errors that are not 400.
_STATUS = {
    "MissingAuthenticationTokenException": 403,
    "AccessDeniedException": 403,
    "InternalFailure": 500,
    "InternalServerError": 500,
    "InternalServerException": 500,
    "ServiceUnavailable": 503,
    "ServiceUnavailableException": 503,
}


def status_for(code: str) -> int:
    """The HTTP status the emulator sends with the error ``code``."""
    return _STATUS.get(code, 400)


class ServiceError(Exception):
    """An error response: ``{"__type": code, "message": message}`` with ``status``."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status_for(code) if status is None else status


def validation_error(message: str) -> ServiceError:
    return ServiceError("ValidationException", message)


def not_found(message: str) -> ServiceError:
    return ServiceError("ResourceNotFoundException", message)
