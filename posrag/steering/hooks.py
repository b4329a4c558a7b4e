"""Registering hooks so that they always come off again, and scoping them to one request.

:func:`patch` registers a list of :class:`HookSpec` and returns a :class:`Handle`; if a registration fails
half-way, what was already registered is removed before the error propagates. :func:`patched` is the
context manager over it: the handle is acquired *before* the ``try``, removal is in ``finally``.

Concurrency model
-----------------
One model may serve several requests at once (LangChain/LlamaIndex call an LLM from thread pools). Hooks on
a module are global, so every steered request registers its *own* hooks, and each hook acts only for the
request that registered it: it checks a :class:`RequestScope` held in a :mod:`contextvars` variable and
returns ``None`` (no change) for any other request. A request's forward passes run in a context where its
scope is active (:meth:`RequestScope.activate`, or :meth:`RequestScope.run` for a worker thread), so a
plain request running next to a steered one on the same model sees no steering, and two steered requests
see only their own. No lock serialises generation. (Registration and removal of hooks are single dictionary
operations under the GIL; the hooks tolerate being called during a concurrent removal.)
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from torch import nn
from torch.utils.hooks import RemovableHandle

HookKind = Literal["forward", "forward_pre"]
T = TypeVar("T")

_ACTIVE_SCOPE: contextvars.ContextVar[RequestScope | None] = contextvars.ContextVar(
    "posrag_steering_scope", default=None
)


class RequestScope:
    """Identity of one steered request; hooks created for it act only while it is active."""

    __slots__ = ("name",)

    def __init__(self, name: str = "request") -> None:
        self.name = name

    def is_active(self) -> bool:
        return _ACTIVE_SCOPE.get() is self

    @contextmanager
    def activate(self) -> Iterator[RequestScope]:
        """Make this scope the active one in the current context for the duration of the block."""
        token = _ACTIVE_SCOPE.set(self)
        try:
            yield self
        finally:
            _ACTIVE_SCOPE.reset(token)

    def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Call ``fn`` in a copy of the current context in which this scope is active (e.g. in a worker thread)."""

        def _call() -> T:
            _ACTIVE_SCOPE.set(self)
            return fn(*args, **kwargs)

        return contextvars.copy_context().run(_call)

    def __repr__(self) -> str:
        return f"RequestScope({self.name!r})"


def active_scope() -> RequestScope | None:
    return _ACTIVE_SCOPE.get()


@dataclass(frozen=True)
class HookSpec:
    """One hook to register: ``kind`` ``forward`` (``hook(module, args, output)``) or ``forward_pre``
    (``hook(module, args, kwargs)`` with ``with_kwargs=True``, else ``hook(module, args)``)."""

    module: nn.Module
    hook: Callable[..., Any]
    kind: HookKind = "forward"
    with_kwargs: bool = False
    name: str = ""


class Handle:
    """Registered hooks; :meth:`remove` takes them all off (idempotent). Also a context manager."""

    def __init__(self, handles: Sequence[RemovableHandle], names: Sequence[str] = ()) -> None:
        self._handles = list(handles)
        self.names = tuple(names)

    def __len__(self) -> int:
        return len(self._handles)

    @property
    def removed(self) -> bool:
        return not self._handles

    def remove(self) -> None:
        while self._handles:
            self._handles.pop().remove()

    def __enter__(self) -> Handle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def _register(spec: HookSpec) -> RemovableHandle:
    if spec.kind == "forward":
        return spec.module.register_forward_hook(spec.hook, with_kwargs=spec.with_kwargs)
    if spec.kind == "forward_pre":
        return spec.module.register_forward_pre_hook(spec.hook, with_kwargs=spec.with_kwargs)
    raise ValueError(f"Unknown hook kind {spec.kind!r}; use 'forward' or 'forward_pre'.")


def patch(specs: Sequence[HookSpec]) -> Handle:
    """Register every hook in ``specs``; on a failure, remove those already registered and re-raise."""
    registered: list[RemovableHandle] = []
    try:
        for spec in specs:
            registered.append(_register(spec))
    except BaseException:
        for handle in reversed(registered):
            handle.remove()
        raise
    return Handle(registered, [spec.name for spec in specs])


@contextmanager
def patched(specs: Sequence[HookSpec]) -> Iterator[Handle]:
    """``with patched(specs) as handle:`` — the hooks are on inside the block and off after it, whatever happens."""
    handle = patch(specs)
    try:
        yield handle
    finally:
        handle.remove()


def scoped(hook: Callable[..., Any], scope: RequestScope) -> Callable[..., Any]:
    """Wrap ``hook`` so that it runs only while ``scope`` is active and is a no-op for any other request."""

    def _scoped_hook(module: nn.Module, *rest: Any) -> Any:
        if _ACTIVE_SCOPE.get() is not scope:
            return None
        return hook(module, *rest)

    _scoped_hook.__wrapped__ = hook  # type: ignore[attr-defined]
    return _scoped_hook


def hook_counts(model: nn.Module) -> dict[str, int]:
    """Number of forward and forward-pre hooks on ``model`` and all its submodules (for checks and tests)."""
    forward = pre = 0
    for module in model.modules():
        forward += len(module._forward_hooks)
        pre += len(module._forward_pre_hooks)
    return {"forward": forward, "forward_pre": pre}


__all__ = [
    "Handle",
    "HookKind",
    "HookSpec",
    "RequestScope",
    "active_scope",
    "hook_counts",
    "patch",
    "patched",
    "scoped",
]
