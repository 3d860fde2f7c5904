"""``LocalProxy``: a source or destination local proxy, connected (and reconnected) until its tunnel ends.

    proxy = LocalProxy(ProxySettings(mode="source", access_token=token, endpoint=data_endpoint(region=r),
                                     services=parse_services("SSH=5555")))
    async with proxy.running() as task:  # entered once ready (or once run() has ended: task.done())
        ...                                # connected, and (source) listening: proxy.ports == {"SSH": 5555}
        await task                         # until the tunnel ends; leaving stops the proxy and drains it

``run()`` returns after ``stop()``, and raises a ``LocalProxyError`` when the proxy cannot go on: the
token refused (``HandshakeRejected``), the tunnel gone (``TunnelClosed``), the services not matching
(``ServiceMismatch``), or the service unreachable for longer than the retry policy allows.

Reconnecting: a dropped connection (network error, ping timeout, the service closing it) closes every
local connection it carried (the guides: streams do not survive it), keeps a source's listeners open,
and connects again with the same access token and client token, backing off on network errors and 5xx.
A connection that ends before the proxy is ready (dropped, or closed for an oversized frame, before the
service announced its services) is a failed attempt like those: backed off, and counted against the
policy's attempts. A 4xx is never retried as is: ``refresh_token`` (if given) may supply a new token,
such as a freshly rotated one, and the proxy tries once with it.
"""

import asyncio
import contextlib
import errno
import itertools
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from ..protocol import ProtocolError
from .connection import Retryable, TunnelSocket
from .errors import ConfigurationError, HandshakeRejected, ServiceMismatch, TunnelClosed, Unreachable
from .multiplexer import Multiplexer
from .settings import DEFAULT_BIND_ADDRESS, ProxySettings, Target

logger = logging.getLogger(__name__)

# A connection that lasted this long showed the service works: its drop is reconnected at once. Shorter
# ones count as failed attempts, so a service that keeps accepting and dropping gets the policy's backoff.
STEADY_SESSION_S = 5.0

# Asked for a new token after a 4xx; returns None when it has none to offer (the refusal then stands).
RefreshToken = Callable[[HandshakeRejected], Awaitable[str | None]]


def resolve_services(mode: str, configured: Mapping[str, Target], announced: list[str]) -> dict[str, Target]:
    """The mapping to use once the service has said which services the tunnel carries (V3 guide, Step 1).

    A lone unnamed mapping takes the tunnel's lone service; a source listens on free ports for services it
    was given no port for; a destination must know where every service goes.

    >>> resolve_services("source", {"": Target(None, 5555)}, ["SSH"])
    {'SSH': Target(host=None, port=5555)}
    >>> resolve_services("source", {"SSH": Target(None, 5555)}, ["SSH", "HTTP"])
    {'SSH': Target(host=None, port=5555), 'HTTP': Target(host=None, port=0)}
    """
    if not announced:
        return dict(configured)
    if set(configured) == {""} and len(announced) == 1:
        return {announced[0]: configured[""]}
    unknown = sorted(set(configured) - set(announced))
    missing = [name for name in announced if name not in configured]
    tunnel = f"the tunnel carries {', '.join(announced)}"
    if unknown and (mode == "source" or "" in unknown):
        raise ServiceMismatch(
            f"services: got {', '.join(unknown) or 'an unnamed service'}, but {tunnel}; "
            "map exactly those names (e.g. SSH=5555)"
        )
    if unknown:
        logger.warning("services %s are not in this tunnel (%s): ignored", ", ".join(unknown), tunnel)
    if missing and mode == "destination":
        raise ServiceMismatch(
            f"services: no destination for {', '.join(missing)}; {tunnel}: map each one (e.g. SSH=22)"
        )
    return {name: configured.get(name, Target(None, 0)) for name in announced}


class LocalProxy:
    """One local proxy; see the module's documentation. Not thread-safe: use it from one event loop."""

    def __init__(
        self,
        settings: ProxySettings,
        *,
        refresh_token: RefreshToken | None = None,
        random_source: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.services: dict[str, Target] = dict(settings.services)
        self.ports: dict[str, int] = {}
        # Set once connected (and, for a source, listening); stays set through reconnects.
        self.ready = asyncio.Event()
        # Set while a connection to the service is up.
        self.online = asyncio.Event()
        self.connections_made = 0
        self._token = settings.access_token
        self._refresh_token = refresh_token
        self._random = random_source
        self._stream_ids = itertools.count(1)
        self._mux: Multiplexer | None = None
        self._servers: list[asyncio.Server] = []
        # A listener's service name, when it changed after listening (a lone unnamed service named).
        self._names: dict[str, str] = {}
        self._stopping = asyncio.Event()
        self._announced: list[str] | None = None
        self._announced_event = asyncio.Event()
        self._last_drop = ""

    # -- control -----------------------------------------------------------------------------------------

    def stop(self) -> None:
        """End ``run()``: close the listeners, the local connections and the tunnel connection."""
        self._stopping.set()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator["asyncio.Future[None]"]:
        """``run()`` as a task, entered once the proxy is ready or the task has ended (it could not start:
        awaiting the task raises why); leaving stops the proxy and waits for the task."""
        task = asyncio.ensure_future(self.run())
        try:
            await first_done(self.ready.wait(), task)
            yield task
        finally:
            self.stop()
            if not task.done():
                await asyncio.gather(task, return_exceptions=True)

    async def run(self) -> None:
        """Connect, serve and reconnect until ``stop()``; raises ``LocalProxyError`` when it cannot go on.

        A source given its services listens before it connects: a port that cannot be had fails at once,
        and a client that connects early waits for the tunnel.
        """
        try:
            if self.settings.mode == "source" and self.services:
                await self._listen()
            await self._run()
        finally:
            self.online.clear()
            for server in self._servers:
                server.close()
            if self._mux is not None:
                self._mux.close()

    async def _run(self) -> None:
        failures = 0
        fresh_token = False
        while not self._stopping.is_set():
            try:
                socket = await TunnelSocket.open(self.settings, self._token)
            except HandshakeRejected as rejected:
                if fresh_token:
                    raise
                await self._after_rejection(rejected)
                fresh_token = True
                continue
            except Retryable as error:
                failures += 1
                await self._back_off(failures, error)
                continue
            fresh_token = False
            started = time.monotonic()
            try:
                await self._session(socket)
            except Retryable as error:
                # It ended before the proxy was ready: no better than a failed open, and a service that
                # accepts and drops at once must not be reconnected to in a tight loop.
                self._last_drop = str(error)
                failures += 1
                await self._back_off(failures, error)
                continue
            if self._stopping.is_set() or time.monotonic() - started >= STEADY_SESSION_S:
                failures = 0  # it worked for a while: the next drop is news, reconnected to at once
            else:
                # Dropped soon after it started, as when the service accepts and drops again and again:
                # each such session is one more failed attempt, waited for as the policy says.
                failures += 1
                await self._back_off(failures, Retryable(self._last_drop or "the connection dropped"))

    async def _back_off(self, failures: int, error: Retryable) -> None:
        """After ``failures`` attempts in a row that got no connection going: wait as the retry policy says,
        or raise ``Unreachable`` once the policy allows no more attempts."""
        policy = self.settings.retry
        if policy.attempts is not None and failures >= policy.attempts:
            raise Unreachable(
                f"cannot reach the tunneling service at {self.settings.endpoint} after {failures} attempts: "
                f"{error}"
            ) from None
        delay = policy.delay(failures, self._random())
        logger.warning("%s; retrying in %.1f s (attempt %d)", error, delay, failures + 1)
        await self._sleep(delay)

    async def _after_rejection(self, rejected: HandshakeRejected) -> None:
        """A 4xx: take a new token from ``refresh_token`` or give up with the clearest message we have."""
        new_token = None
        if self._refresh_token is not None and rejected.token_refused:
            new_token = await self._refresh_token(rejected)
        if new_token is not None and new_token != self._token:
            logger.info("connecting with the new access token")
            self._token = new_token
            return
        if self.connections_made and rejected.token_refused:
            refusal = f"HTTP {rejected.status}" + (f": {rejected.detail}" if rejected.detail else "")
            raise TunnelClosed(
                f"the tunnel has ended: {self._last_drop or 'the connection dropped'}, and the service "
                f"refuses the token since ({refusal}); the tunnel was closed or has expired, or its token "
                "was rotated"
            ) from None
        raise rejected

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    # -- one connection ----------------------------------------------------------------------------------

    async def _session(self, socket: TunnelSocket) -> None:
        """Serve one connection until it ends or ``stop()``; raises ``Retryable`` if it ends before the
        proxy is ready (the caller retries it as a failed attempt), and what the proxy cannot go on after."""
        self.connections_made += 1
        self._announced_event.clear()
        mux = Multiplexer(
            self.settings.mode,
            self.services,
            socket.version,
            socket.send_bytes,
            self._stream_ids,
            on_service_ids=self._on_service_ids,
        )
        self._mux = mux
        errors: list[BaseException] = []
        reading = asyncio.ensure_future(self._read(socket, mux))
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            logger.info(
                "connected to the tunnel as %s (protocol V%d%s)",
                self.settings.mode,
                socket.version,
                f", channel {socket.channel_id}" if socket.channel_id else "",
            )
            if not self.ready.is_set():
                await self._first_start(socket, mux, reading)
            elif self._announced is not None:
                mux.services = self.services
            self.online.set()
            await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if reading.done():
                error = reading.exception()
                if isinstance(error, Retryable):
                    self._last_drop = str(error)
                    logger.log(logging.INFO if error.orderly else logging.WARNING, "%s; reconnecting", error)
                elif error is not None:
                    errors.append(error)
        finally:
            self.online.clear()
            self._mux = None
            mux.close()
            reading.cancel()
            stopping.cancel()
            with contextlib.suppress(Exception):
                await socket.close()
        if errors:
            raise errors[0]

    async def _first_start(
        self, socket: TunnelSocket, mux: Multiplexer, reading: "asyncio.Future[None]"
    ) -> None:
        """Learn the tunnel's services (V2+: the service announces them first), then listen (source)."""
        if socket.version >= 2:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    first_done(self._announced_event.wait(), reading),
                    self.settings.service_ids_timeout,
                )
            if reading.done():
                reading.result()  # raises what ended the connection
            if self._announced is None:
                logger.warning(
                    "the service announced no services within %.0f s: using the mapping as given",
                    self.settings.service_ids_timeout,
                )
        if self._announced is not None:
            self.services = resolve_services(self.settings.mode, self.settings.services, self._announced)
            mux.services = self.services
            if "" in self.ports and "" not in self.services:  # the lone unnamed service got its name
                (name,) = self.services
                self.ports[name] = self.ports.pop("")
                self._names[""] = name
        if self.settings.mode == "source":
            await self._listen()
        self.ready.set()

    def _on_service_ids(self, announced: list[str]) -> None:
        if self._announced is not None and set(announced) != set(self._announced):
            logger.warning("the tunnel's services changed to %s; restart to use them", ", ".join(announced))
            return
        self._announced = announced
        self._announced_event.set()

    async def _read(self, socket: TunnelSocket, mux: Multiplexer) -> None:
        errors: list[ProtocolError] = []
        async for batch in socket.messages(errors):
            for error in errors:
                mux.reset_for(error)
            errors.clear()
            for message in batch:
                try:
                    await mux.handle(message)
                except ProtocolError as error:  # a message we cannot act on: it costs its connection
                    mux.reset_for(error)

    # -- source listeners --------------------------------------------------------------------------------

    async def _listen(self) -> None:
        """Listen for every service not listened for yet."""
        for service, target in self.services.items():
            if service in self.ports:
                continue
            host = target.host or self.settings.bind_address
            try:
                server = await asyncio.start_server(self._accepter(service), host, target.port)
            except OSError as error:
                for started in self._servers:
                    started.close()
                # A setting to change, like any bad value (exit 2): the port, or the address listened on.
                cannot = (
                    f"cannot listen for {service or 'the service'} on {host}:{target.port}: "
                    f"{os.strerror(error.errno) if error.errno else error}"
                )
                if error.errno == errno.EADDRNOTAVAIL:
                    raise ConfigurationError(
                        f"bind address: {cannot}; listen on an address of this machine (e.g. "
                        f"{DEFAULT_BIND_ADDRESS})"
                    ) from None
                raise ConfigurationError(
                    f"services: {cannot}; choose another port (e.g. {service or 'SSH'}=0 for any)"
                ) from None
            self._servers.append(server)
            self.ports[service] = server.sockets[0].getsockname()[1]
            logger.info("listening for %s on %s:%d", service or "the service", host, self.ports[service])

    def _accepter(
        self, service: str
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # A client that connects while the tunnel reconnects waits for it.
            while self._mux is None or not self.online.is_set():
                if self._stopping.is_set():
                    writer.close()
                    return
                await first_done(self.online.wait(), self._stopping.wait())
            try:
                await self._mux.accept(service, reader, writer)
            except Exception as error:
                logger.warning("%s: connection ended: %s", service or "service", error)
                writer.close()

        return accept


async def first_done(*awaitables: Awaitable[Any]) -> None:
    """Wait until the first of ``awaitables`` is done; the others are cancelled, except tasks and futures
    passed in, which are left running (their owner decides)."""
    futures = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    try:
        await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for future, awaitable in zip(futures, awaitables, strict=True):
            if future is not awaitable:
                future.cancel()
