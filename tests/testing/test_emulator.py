from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import pytest

from mlport.errors import InvalidSpecError, ThrottledError
from mlport.testing.emulator import (
    DROP_RESPONSE_AFTER_COMMIT,
    Emulator,
    EmulatorBase,
    FaultInjector,
    InjectedError,
)


class InMemoryEmulator(EmulatorBase):
    """The smallest emulator: a dict of resources behind a fault injector."""

    provider = "inmemory"

    def __init__(self) -> None:
        self.faults = FaultInjector()
        self.resources: dict[str, str] = {}
        self.closed = False

    @property
    def env(self) -> Mapping[str, str]:
        return {"INMEMORY_ENDPOINT": "http://127.0.0.1:1"}

    @property
    def connect_kwargs(self) -> Mapping[str, Any]:
        return {"endpoint": "http://127.0.0.1:1"}

    def create(self, name: str) -> str:
        fault = self.faults.take("Create")
        if fault == DROP_RESPONSE_AFTER_COMMIT:
            self.resources[name] = "created"
            raise ConnectionResetError("answer lost")
        if isinstance(fault, BaseException | type):
            raise fault
        if fault is not None:
            raise RuntimeError(fault)
        self.resources[name] = "created"
        return name

    def reset(self) -> None:
        self.resources.clear()
        self.faults.reset()

    def inject(self, method: str, error: InjectedError, times: int = 1) -> None:
        self.faults.inject(method, error, times)

    def close(self) -> None:
        self.closed = True


def test_an_emulator_satisfies_the_protocol() -> None:
    emulator: Emulator = InMemoryEmulator()
    assert isinstance(emulator, Emulator)
    with emulator as entered:
        assert entered.provider == "inmemory"
    assert emulator.closed  # type: ignore[attr-defined]


def test_an_object_missing_members_is_not_an_emulator() -> None:
    class Partial:
        provider = "partial"

        def close(self) -> None:
            pass

    assert not isinstance(Partial(), Emulator)


def test_injected_faults_fail_the_next_calls_then_stop() -> None:
    emulator = InMemoryEmulator()
    emulator.inject("Create", ThrottledError("slow down"), times=2)
    with pytest.raises(ThrottledError):
        emulator.create("a")
    with pytest.raises(ThrottledError):
        emulator.create("a")
    assert emulator.create("a") == "a"


def test_drop_response_after_commit_applies_the_call_but_loses_the_answer() -> None:
    emulator = InMemoryEmulator()
    emulator.inject("Create", DROP_RESPONSE_AFTER_COMMIT)
    with pytest.raises(ConnectionResetError):
        emulator.create("model")
    assert emulator.resources == {"model": "created"}


def test_faults_for_one_method_queue_in_order() -> None:
    faults = FaultInjector()
    faults.inject("Create", "ThrottlingException", times=2)
    faults.inject("Create", ValueError)
    faults.inject("Delete", "NotFound")
    assert faults.pending() == 4
    assert faults.pending("Create") == 3
    assert [faults.take("Create") for _ in range(4)] == [
        "ThrottlingException",
        "ThrottlingException",
        ValueError,
        None,
    ]
    assert faults.take("Get") is None
    assert faults.pending() == 1
    faults.reset()
    assert faults.take("Delete") is None
    assert faults.pending() == 0


@pytest.mark.parametrize(("method", "times"), [("Create", 0), ("Create", -1), ("", 1)])
def test_inject_rejects_nonsense(method: str, times: int) -> None:
    with pytest.raises(InvalidSpecError):
        FaultInjector().inject(method, "X", times=times)


def test_each_fault_is_taken_exactly_once_across_threads() -> None:
    faults = FaultInjector()
    faults.inject("Predict", "UNAVAILABLE", times=500)
    taken: list[InjectedError | None] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        mine = [faults.take("Predict") for _ in range(100)]
        with lock:
            taken.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert taken.count("UNAVAILABLE") == 500
    assert taken.count(None) == 300
