"""TunnelEmulator: a local AWS IoT Secure Tunneling control plane that boto3 talks to unmodified.

Usage (``local_aws``/``tunnel_emulator`` fixtures start it and set the environment for pytest):

>>> import boto3
>>> from cdk_secure_tunnel.emulator import ManualClock
>>> emulator = TunnelEmulator(clock=ManualClock())
>>> endpoint = emulator.start()  # http://127.0.0.1:<port>, for AWS_ENDPOINT_URL_IOTSECURETUNNELING
>>> emulator.data_plane.url.startswith("ws://127.0.0.1:")  # the tunnels' data plane (its module says more)
True
>>> client = boto3.client("iotsecuretunneling", endpoint_url=endpoint, region_name="us-east-1",
...                       aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="example")
>>> config = {"thingName": "pump-7", "services": ["SSH"]}
>>> tunnel_id = client.open_tunnel(destinationConfig=config)["tunnelId"]
>>> emulator.notifications("pump-7")[0]["clientMode"]
'destination'
>>> _ = emulator.clock.advance(hours=12)
>>> emulator.tunnel(tunnel_id).status
'CLOSED'
>>> emulator.stop()
"""

import copy
import threading
import time
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

from ..protocol.handshake import Mode
from .clock import Clock, SystemClock
from .data_plane import DataPlane
from .errors import ServiceError
from .faults import InjectedFailures, RateLimits
from .http_server import EmulatorServer
from .model_validation import service_model, validate, without_sensitive
from .tunnel_store import RequestContext, TunnelStore, TunnelView
from .upgrade import Refusal

# Operations after which live data plane connections may have to end.
_ACTING_ON_CONNECTIONS = frozenset({"CloseTunnel", "RotateTunnelAccessToken"})


class Call(NamedTuple):
    """One request the emulator received: the operation and its parameters (never a token)."""

    operation: str
    params: dict[str, Any]


class TunnelEmulator:
    """The service's state, its operations and the faults a test configures; ``start()`` serves it.

    Everything is safe to change while the server runs: every request reads the settings anew.

    - ``clock``: where tunnel times come from (``ManualClock`` to fast-forward lifetimes).
    - ``max_open_tunnels``: OpenTunnel answers LimitExceededException past it (``None``: no limit).
    - ``latency``: seconds each call waits before it is handled (the API's; the data plane's own
      ``data_plane.latency`` delays relayed frames).
    - ``region``: used for requests whose Authorization header names no SigV4 credential scope.
    - ``account``: the account id in tunnel ARNs.
    - ``data_plane``: the tunnels' WebSocket endpoint, served beside the control plane. Its faults sit on
      it (``refuse_handshakes``, ``drop``, ``latency``, ``limit_bandwidth``, ``reset_session``) beside its
      traffic ``log``, because they act on connections rather than calls; ``reset()`` clears both planes'.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        max_open_tunnels: int | None = None,
        region: str = "us-east-1",
        account: str = "123456789012",
        latency: float = 0.0,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.region = region
        self.account = account
        self.latency = latency
        self._initial_settings = (max_open_tunnels, latency)
        self._lock = threading.RLock()
        self._store = TunnelStore(account, max_open_tunnels)
        self._rate_limits = RateLimits()
        self._failures = InjectedFailures()
        self._calls: list[Call] = []
        self._server: EmulatorServer | None = None
        self.data_plane = DataPlane(self)

    # -- serving ---------------------------------------------------------------------------------------------

    def start(self, port: int = 0, host: str = "127.0.0.1", *, data_port: int = 0, tls: bool = False) -> str:
        """Serve on ``host:port`` (0: any free port) in a background thread, and the data plane on
        ``host:data_port`` (``wss://`` when ``tls``); returns the control plane's endpoint URL."""
        if self._server is not None:
            raise RuntimeError(f"The emulator already serves on {self._server.endpoint}")
        self._server = EmulatorServer(self.handle, host, port)
        self._server.start()
        self.data_plane.start(host, data_port, tls=tls)
        return self._server.endpoint

    @property
    def endpoint(self) -> str:
        """The URL the emulator serves on (after ``start()``)."""
        if self._server is None:
            raise RuntimeError("The emulator is not started")
        return self._server.endpoint

    def stop(self) -> None:
        """Stop serving (the state stays readable). Safe to call when not started."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()
        self.data_plane.stop()

    def __enter__(self) -> "TunnelEmulator":
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- configuration ---------------------------------------------------------------------------------------

    @property
    def max_open_tunnels(self) -> int | None:
        return self._store.max_open_tunnels

    @max_open_tunnels.setter
    def max_open_tunnels(self, limit: int | None) -> None:
        with self._lock:
            self._store.max_open_tunnels = limit

    def limit_rate(
        self,
        operation: str | None,
        per_second: float | None,
        burst: float | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """Answer ThrottlingException to calls beyond ``per_second`` (a token bucket).

        ``operation=None`` limits all operations together; ``per_second=None`` removes the limit. ``burst``
        is the bucket's size (default: one second's worth, at least 1). ``monotonic`` is the bucket's time
        in seconds (default: real monotonic time, not the emulator's ``clock``); a test that passes its own,
        such as a ``ManualClock``'s ``now``, throttles the same however slowly its calls arrive.

        >>> from cdk_secure_tunnel.emulator import ManualClock
        >>> emulator = TunnelEmulator()
        >>> bucket_time = ManualClock(start=0)
        >>> emulator.limit_rate("OpenTunnel", per_second=1, monotonic=bucket_time.now)
        >>> _ = emulator.handle("OpenTunnel", {})
        >>> emulator.handle("OpenTunnel", {})
        Traceback (most recent call last):
        ...
        cdk_secure_tunnel.emulator.errors.ServiceError: ThrottlingException: Rate exceeded
        >>> _ = bucket_time.advance(1)  # a second later the bucket holds a token again
        >>> _ = emulator.handle("OpenTunnel", {})
        >>> emulator.limit_rate(None, per_second=None)
        """
        self._check_operation(operation)
        with self._lock:
            self._rate_limits.set(operation, per_second, burst, monotonic)

    def fail_next(
        self,
        operation: str | None,
        times: int = 1,
        error: str = "ThrottlingException",
        message: str | None = None,
        status: int | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``operation`` (``None``: any) with the error code ``error``.

        The HTTP status defaults to AWS's for that code (400 for client errors such as ThrottlingException,
        500 for InternalFailure, 503 for ServiceUnavailable). Failed calls change no state.

        >>> emulator = TunnelEmulator()
        >>> emulator.fail_next("OpenTunnel", times=2, error="ThrottlingException")
        >>> emulator.handle("OpenTunnel", {})
        Traceback (most recent call last):
        ...
        cdk_secure_tunnel.emulator.errors.ServiceError: ThrottlingException: Injected ThrottlingException
        """
        self._check_operation(operation)
        failure = ServiceError(error, message or f"Injected {error}", status)
        with self._lock:
            self._failures.add(operation, failure, times)

    def fail_every(self, operation: str | None, every: int = 2, error: str = "ThrottlingException") -> None:
        """Answer the next call of ``operation`` (``None``: any), and every ``every``-th after it, with
        ``error`` until ``reset()``: ``every=2`` fails every other call.

        >>> emulator = TunnelEmulator()
        >>> emulator.fail_every(None, every=2, error="ThrottlingException")
        >>> outcomes = []
        >>> for _ in range(4):
        ...     try:
        ...         outcomes.append(emulator.handle("ListTunnels", {}) and "ok")
        ...     except ServiceError as error:
        ...         outcomes.append(error.code)
        >>> outcomes
        ['ThrottlingException', 'ok', 'ThrottlingException', 'ok']
        """
        self._check_operation(operation)
        with self._lock:
            self._failures.add_periodic(operation, ServiceError(error, f"Injected {error}"), every)

    def reset(self) -> None:
        """Forget all tunnels, notifications, calls, rate limits and queued failures, and set
        ``max_open_tunnels`` and ``latency`` back to the constructor's values. The clock stays.
        """
        max_open_tunnels, self.latency = self._initial_settings
        with self._lock:
            self._store = TunnelStore(self.account, max_open_tunnels)
            self._rate_limits = RateLimits()
            self._failures = InjectedFailures()
            self._calls = []
        self.data_plane.reset()

    # -- inspection ------------------------------------------------------------------------------------------

    def tunnel(self, tunnel_id: str) -> TunnelView:
        """A snapshot of one tunnel; KeyError once the service has forgotten it (or never knew it)."""
        with self._lock:
            self._store.expire(self.clock.now())
            return self._store.view(tunnel_id)

    def tunnels(self) -> list[TunnelView]:
        """Snapshots of every tunnel the service still knows (open and closed, all regions), newest first."""
        with self._lock:
            self._store.expire(self.clock.now())
            return self._store.views()

    def open_tunnels(self) -> list[TunnelView]:
        """Snapshots of the OPEN tunnels, newest first."""
        return [view for view in self.tunnels() if view.status == "OPEN"]

    def notifications(self, thing_name: str) -> list[dict[str, Any]]:
        """The messages published to ``$aws/things/<thing_name>/tunnels/notify``, oldest first.

        >>> emulator = TunnelEmulator()
        >>> config = {"thingName": "pump-7", "services": ["SSH"]}
        >>> _ = emulator.handle("OpenTunnel", {"destinationConfig": config})
        >>> emulator.notifications("pump-7")
        [{'clientAccessToken': '...', 'clientMode': 'destination', 'region': 'us-east-1',
          'services': ['SSH']}]
        """
        with self._lock:
            return self._store.notifications(thing_name)

    def is_token_valid(self, token: str) -> bool:
        """Whether ``token`` is a current token of an OPEN tunnel (not rotated away, closed or expired)."""
        with self._lock:
            self._store.expire(self.clock.now())
            return self._store.is_token_valid(token)

    @property
    def calls(self) -> list[Call]:
        """Every request received since the last reset, oldest first, failed and throttled ones included.

        >>> emulator = TunnelEmulator()
        >>> tunnel_id = emulator.handle("OpenTunnel", {})["tunnelId"]
        >>> _ = emulator.handle("DescribeTunnel", {"tunnelId": tunnel_id})
        >>> [call.operation for call in emulator.calls]
        ['OpenTunnel', 'DescribeTunnel']
        """
        with self._lock:
            return list(self._calls)

    # -- what the data plane asks (``data_plane.Authority``) -----------------------------------------------

    def admit_connection(
        self, token: str, mode: Mode, client_token: str | None
    ) -> tuple[str, tuple[str, ...]]:
        with self._lock:
            self._store.expire(self.clock.now())
            try:
                return self._store.admit(token, mode, client_token)
            except ServiceError as error:
                raise Refusal(error.status, error.message) from None

    def connection_ending(
        self, tunnel_id: str, mode: Mode, token: str, revoke_live: bool
    ) -> Literal["closed", "expired", "revoked"] | None:
        with self._lock:
            self._store.expire(self.clock.now())
            return self._store.connection_ending(tunnel_id, mode, token, revoke_live)  # type: ignore[return-value]

    def set_connected(self, tunnel_id: str, mode: Mode, connected: bool) -> None:
        with self._lock:
            self._store.set_connected(tunnel_id, mode, connected, self.clock.now())

    # -- handling --------------------------------------------------------------------------------------------

    def handle(self, operation: str, params: Any, region: str | None = None) -> dict[str, Any]:
        """Run one call as the service would; raises ServiceError with the error to answer.

        The HTTP layer calls this; tests may too, to skip the wire.
        """
        if operation not in service_model().operation_names:
            raise ServiceError("UnknownOperationException", f"Unknown operation {operation}")
        logged = copy.deepcopy(without_sensitive(operation, params)) if isinstance(params, dict) else {}
        with self._lock:
            self._calls.append(Call(operation, logged))
            latency = self.latency
        if latency > 0:
            time.sleep(latency)
        with self._lock:
            if not self._rate_limits.admit(operation):
                raise ServiceError("ThrottlingException", "Rate exceeded")
            failure = self._failures.next_for(operation)
        if failure is not None:
            raise failure
        validate(operation, params)
        with self._lock:
            context = RequestContext(region=region or self.region, now=self.clock.now())
            self._store.expire(context.now)
            response = self._store.handler(operation)(params, context)
        if operation in _ACTING_ON_CONNECTIONS:
            self.data_plane.refresh()
        return response

    @staticmethod
    def _check_operation(operation: str | None) -> None:
        if operation is not None and operation not in service_model().operation_names:
            raise ValueError(f"{operation!r} is not an operation of AWS IoT Secure Tunneling")
