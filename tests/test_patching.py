"""Patcher: every patch undone exactly (instance vs class attribute), newest first, even after an error."""

import pytest
from torch import nn

from lightning_aca.patching import Patcher


class Owner:
    def method(self):
        return "class"


def test_class_attribute_is_removed_from_the_instance_again():
    owner, patcher = Owner(), Patcher()
    patcher.patch(owner, "method", lambda: "patched")
    assert owner.method() == "patched"
    patcher.restore()
    assert "method" not in vars(owner)
    assert owner.method() == "class"


def test_instance_attribute_gets_its_own_value_back_even_none():
    owner, patcher = Owner(), Patcher()
    own = lambda: "instance"  # noqa: E731
    owner.method, owner.hook = own, None
    patcher.patch(owner, "method", lambda: "patched")
    patcher.patch(owner, "hook", print)
    patcher.restore()
    assert vars(owner)["method"] is own
    assert "hook" in vars(owner) and owner.hook is None


def test_patching_twice_restores_the_first_value_and_restore_is_repeatable():
    owner, patcher = Owner(), Patcher()
    patcher.patch(owner, "method", lambda: "first")
    patcher.patch(owner, "method", lambda: "second")
    patcher.restore()
    patcher.restore()
    assert "method" not in vars(owner)
    patcher.patch(owner, "method", lambda: "again")  # usable after restore
    patcher.restore()
    assert owner.method() == "class"


def test_deferred_cleanups_run_newest_first_and_an_error_does_not_stop_the_rest():
    owner, patcher, calls = Owner(), Patcher(), []
    patcher.patch(owner, "method", lambda: "patched")
    patcher.defer(calls.append, "first")
    patcher.defer(lambda: (_ for _ in ()).throw(RuntimeError("cleanup failed")))
    patcher.defer(calls.append, "last")
    with pytest.raises(RuntimeError, match="cleanup failed"):
        patcher.restore()
    assert calls == ["last", "first"]
    assert "method" not in vars(owner)


def test_module_parameters_buffers_and_submodules_are_refused():
    net = nn.Sequential(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="parameter, buffer or submodule"):
        Patcher().patch(net, "0", nn.Identity())
    with pytest.raises(ValueError, match="parameter, buffer or submodule"):
        Patcher().patch(net[0], "weight", None)
