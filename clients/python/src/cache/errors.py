"""The client's exceptions: one base class, a subclass per way a call can fail."""

from __future__ import annotations


class CacheError(Exception):
    """Every error the client raises."""


class InvalidConfiguration(CacheError, ValueError):
    """The configuration cannot work (no nodes, a node that is not host:port, a bad number)."""


class InvalidRequest(CacheError):
    """The node refused the request (HTTP 4xx): a key or value past its limit, bad JSON, a token
    missing or without the role. Never retried."""

    def __init__(self, status: int, message: str, node: str | None = None) -> None:
        super().__init__(f"{status}: {message}" + (f" ({node})" if node else ""))
        self.status = status
        self.message = message
        self.node = node


class Unavailable(CacheError):
    """The consistency level could not be met: ``answered`` of ``required`` replicas answered."""

    def __init__(self, level: str, answered: int, required: int, node: str | None = None) -> None:
        super().__init__(
            f"consistency {level} not met: {answered} of {required} replicas answered" + (f" ({node})" if node else "")
        )
        self.level = level
        self.answered = answered
        self.required = required
        self.node = node


class ServerError(CacheError):
    """The node answered with another 5xx (overloaded, not ready, writes refused), or 408 (a write's
    deadline had passed by its clock)."""

    def __init__(self, status: int, message: str, node: str | None = None) -> None:
        super().__init__(f"{status}: {message}" + (f" ({node})" if node else ""))
        self.status = status
        self.message = message
        self.node = node


class Timeout(CacheError):
    """The call's deadline (``timeout``) passed before an answer."""

    def __init__(self, after: float, attempts: int, last: str | None) -> None:
        super().__init__(
            f"no answer within {after:.3f} s after {attempts} attempts" + (f"; last: {last}" if last else "")
        )
        self.after = after
        self.attempts = attempts
        self.last = last


class NoReachableNode(CacheError):
    """Every node tried was unreachable; ``tried`` says what each one did."""

    def __init__(self, tried: dict[str, str]) -> None:
        detail = "; ".join(f"{node}: {reason}" for node, reason in tried.items()) or "no node to try"
        super().__init__(f"no node reachable ({detail})")
        self.tried = tried


class ClientClosed(CacheError):
    """The client was closed."""
