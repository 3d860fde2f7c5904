"""The service's wire protocol: JSON 1.1 over HTTP POST, as botocore speaks it.

A request names its operation in ``X-Amz-Target: IoTSecuredTunneling.<Operation>``, carries a JSON body
of type ``application/x-amz-json-1.1`` and must be signed: the ``Authorization`` header is required (its
signature is not checked) and its SigV4 credential scope gives the request's region. Errors go back as
``{"__type": code, "message": ...}``, which botocore turns into the client's modeled exceptions.
"""

import json
import logging
import re
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .errors import ServiceError
from .model_validation import service_model

# What the server passes each request to: (operation, parameters, region of the signature or None) ->
# the response, or a ServiceError with the error to answer. TunnelEmulator.handle is one.
RequestHandler = Callable[[str, Any, str | None], dict[str, Any]]

CONTENT_TYPE = "application/x-amz-json-1.1"
_LOG = logging.getLogger(__name__)
# "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/IoTSecuredTunneling/aws4_request, ..."
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/([a-z0-9-]+)/[^/,\s]+/aws4_request")


def region_of(authorization: str) -> str | None:
    """The region of a SigV4 Authorization header's credential scope, if it has one."""
    match = _CREDENTIAL_SCOPE.search(authorization)
    return match.group(1) if match else None


class _Handler(BaseHTTPRequestHandler):
    server: "_HTTPServer"
    # HTTP/1.1 keeps botocore's pooled connections open between calls.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle's algorithm the second waits for the client's
    # delayed ACK, adding 40 ms or more to every call.
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            operation, region = self._route()
            try:
                params = json.loads(body or b"{}")
            except ValueError as error:
                raise ServiceError("SerializationException", "The request body is not valid JSON") from error
            self._reply(200, self.server.handle(operation, params, region))
        except ServiceError as error:
            self._reply(error.status, {"__type": error.code, "message": error.message}, error.code)
        except Exception:
            _LOG.exception("The emulator failed to handle a request")
            self._reply(500, {"__type": "InternalFailure", "message": "Internal failure"}, "InternalFailure")

    def do_GET(self) -> None:
        code = "UnknownOperationException"
        self._reply(404, {"__type": code, "message": "The service accepts POST only"}, code)

    def _route(self) -> tuple[str, str | None]:
        """The operation and region of a request, or the error AWS gives a request it cannot route."""
        authorization = self.headers.get("Authorization")
        if not authorization:
            raise ServiceError("MissingAuthenticationTokenException", "Missing Authentication Token")
        prefix, _, operation = (self.headers.get("X-Amz-Target") or "").partition(".")
        model = service_model()
        if prefix != model.metadata["targetPrefix"] or operation not in model.operation_names:
            raise ServiceError("UnknownOperationException", "Unknown operation")
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if content_type != CONTENT_TYPE:
            raise ServiceError("UnknownOperationException", f"Expected Content-Type {CONTENT_TYPE}")
        return operation, region_of(authorization)

    def _reply(self, status: int, payload: dict[str, Any], error_code: str | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if error_code is not None:
            self.send_header("x-amzn-ErrorType", error_code)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        _LOG.debug(format, *args)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 resets connections when many handlers call at once
    # (the burst tests), which AWS never does; that would test the emulator, not the handler.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handle: RequestHandler) -> None:
        self.handle = handle
        super().__init__(address, _Handler)


class EmulatorServer:
    """Serves ``handle`` over HTTP from a background thread."""

    def __init__(self, handle: RequestHandler, host: str = "127.0.0.1", port: int = 0) -> None:
        self._http = _HTTPServer((host, port), handle)
        self._thread = threading.Thread(target=self._http.serve_forever, name="tunnel-emulator", daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join()
