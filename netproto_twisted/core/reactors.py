"""The reactor types library code takes: intersections of Twisted's reactor interfaces.

Library code never imports the global reactor: it takes a ``reactor`` (or
``clock``) argument typed with the interfaces it uses.  Where one interface
is enough, the code names it (``IReactorTime``, ``IReactorFromThreads``...).
Where it needs several, it names one of the interfaces below, each the
*intersection* of the interfaces it extends.  They are static types only:
no object needs to declare them (nothing checks ``providedBy`` against them);
Twisted's reactors, and ``MemoryReactorClock`` for the parts a test uses,
are what callers pass.
"""

from __future__ import annotations

from twisted.internet.interfaces import (
    IReactorCore,
    IReactorFDSet,
    IReactorFromThreads,
    IReactorPluggableNameResolver,
    IReactorProcess,
    IReactorSocket,
    IReactorSSL,
    IReactorTCP,
    IReactorThreads,
    IReactorTime,
    IReactorUDP,
    IReactorUNIX,
)

__all__ = [
    "IConnectReactor",
    "ICoreThreadsReactor",
    "IListenReactor",
    "IServerReactor",
    "IStoreReactor",
    "ITimeThreadsReactor",
]


class ITimeThreadsReactor(IReactorTime, IReactorThreads):
    """Timers and a thread pool: servers whose handlers run in threads."""


class ICoreThreadsReactor(IReactorCore, IReactorFromThreads):
    """Shutdown triggers and calls from threads: stores that sync in threads."""


class IListenReactor(IReactorCore, IReactorTCP, IReactorSSL, IReactorUNIX, IReactorUDP):
    """What listening on endpoint strings needs (``serverFromString``, ``listenUDP``)."""


class IConnectReactor(IReactorTime, IReactorTCP, IReactorPluggableNameResolver):
    """What a client connecting by host name needs (``HostnameEndpoint``, timeouts)."""


class IStoreReactor(ITimeThreadsReactor, ICoreThreadsReactor):
    """A store that keeps time, runs its disk work in threads and syncs at shutdown."""


class IServerReactor(
    IStoreReactor,
    IListenReactor,
    IConnectReactor,
    IReactorProcess,
    IReactorSocket,
    IReactorFDSet,
):
    """A daemon's reactor: everything the service tree of a daemon uses (twistd's reactor)."""
