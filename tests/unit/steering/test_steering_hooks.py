"""Hook registration that always undoes itself, and hooks scoped to one request."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import torch
from torch import nn

from posrag.steering import HookSpec, RequestScope, hook_counts, patch, patched
from posrag.steering.hooks import active_scope, scoped


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))


def _add_one(module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
    return output + 1


def test_patch_registers_and_handle_removes_idempotently() -> None:
    net = _net()
    x = torch.randn(2, 4)
    base = net(x)
    handle = patch([HookSpec(net[0], _add_one), HookSpec(net[1], _add_one, name="second")])
    assert len(handle) == 2 and handle.names == ("", "second")
    assert not torch.equal(net(x), base)
    handle.remove()
    handle.remove()
    assert handle.removed
    assert hook_counts(net) == {"forward": 0, "forward_pre": 0}
    assert torch.equal(net(x), base)


def test_registration_failing_half_way_removes_what_it_registered() -> None:
    net = _net()
    not_a_module = object()
    specs = [HookSpec(net[0], _add_one), HookSpec(net[1], _add_one, "forward_pre"), HookSpec(not_a_module, _add_one)]  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        patch(specs)
    assert hook_counts(net) == {"forward": 0, "forward_pre": 0}


def test_patched_removes_hooks_after_an_exception() -> None:
    net = _net()
    x = torch.randn(2, 4)
    base = net(x)
    with pytest.raises(RuntimeError, match="boom"), patched([HookSpec(net[0], _add_one)]):
        assert hook_counts(net)["forward"] == 1
        raise RuntimeError("boom")
    assert hook_counts(net) == {"forward": 0, "forward_pre": 0}
    assert torch.equal(net(x), base)


def test_scoped_hook_acts_only_while_its_scope_is_active() -> None:
    net = _net()
    x = torch.randn(2, 4)
    base = net(x)
    scope = RequestScope("mine")
    with patched([HookSpec(net[1], scoped(_add_one, scope))]):
        assert torch.equal(net(x), base)  # not active: no-op
        with scope.activate():
            assert active_scope() is scope
            assert torch.equal(net(x), base + 1)
        assert active_scope() is None
        assert torch.equal(scope.run(net, x), base + 1)
        assert torch.equal(net(x), base)  # run() does not leak the scope into the caller's context
        # Another request's scope does not trigger it.
        with RequestScope("other").activate():
            assert torch.equal(net(x), base)


def test_scope_is_per_thread_context() -> None:
    net = _net()
    x = torch.randn(2, 4)
    base = net(x)
    scope = RequestScope()
    results: dict[str, torch.Tensor] = {}

    def plain() -> None:
        results["plain"] = net(x)

    with patched([HookSpec(net[1], scoped(_add_one, scope))]), scope.activate():
        worker = threading.Thread(target=plain)  # a new thread does not inherit the active scope
        worker.start()
        worker.join()
        results["steered"] = net(x)
    assert torch.equal(results["plain"], base)
    assert torch.equal(results["steered"], base + 1)


def test_scoped_pre_hook_tolerates_a_call_without_kwargs() -> None:
    scope = RequestScope()
    calls: list[Any] = []
    hook = scoped(lambda module, args, kwargs=None: calls.append(kwargs), scope)
    # As torch calls a hook whose with_kwargs registration vanished during a concurrent removal.
    assert hook(nn.Identity(), (torch.zeros(1),)) is None
    assert calls == []
