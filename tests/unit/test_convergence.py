"""agent.targeting.convergence: the grace window, and where it starts for what already exists
when the agent (or a one-shot `check`) starts: at the change the API recorded."""

from __future__ import annotations

import dataclasses
import ipaddress

from agent import model
from agent.targeting.convergence import REMEMBER_SECONDS, ConvergenceTracker
from tests.support.builders import service

START = 1_800_000_000.0  # the agent's clock at its first observation
GRACE = 30.0
KEY = ("shop", "web")


def tracker(now: list[float]) -> ConvergenceTracker:
    return ConvergenceTracker(GRACE, clock=lambda: now[0])


def inventory(created_at: float = 0.0, *slices: model.EndpointSlice, name: str = "web") -> model.Inventory:
    return model.Inventory([dataclasses.replace(service(name), created_at=created_at)], slices)


def web_slice(*, created_at: float = 0.0, trigger_time: float = 0.0,
              address: str = "198.18.1.1") -> model.EndpointSlice:
    return model.EndpointSlice("shop", "web-x", "web", "IPv4",
                               (model.Endpoint((ipaddress.ip_address(address),), True),),
                               (model.EndpointPort("http", "TCP", 8080),),
                               created_at=created_at, trigger_time=trigger_time)


def test_a_service_created_just_before_start_converges_until_creation_plus_grace() -> None:
    now = [START]
    t = tracker(now)
    t.observe(inventory(START - 2))
    assert t.settle_by() == {KEY: START - 2 + GRACE}
    now[0] = START - 2 + GRACE - 0.1
    assert t.settle_by() == {KEY: START - 2 + GRACE}
    now[0] = START - 2 + GRACE
    assert t.settle_by() == {}


def test_a_service_created_an_hour_ago_is_settled() -> None:
    t = tracker([START])
    t.observe(inventory(START - 3600))
    assert t.settle_by() == {}
    assert t.recently_changed() == []


def test_unknown_times_are_settled() -> None:
    t = ConvergenceTracker(GRACE, clock=lambda: 5.0)  # 0.0 (unknown) would be within grace of this clock
    t.observe(inventory(0.0, web_slice()))
    assert t.settle_by() == {}


def test_a_recorded_time_in_the_future_is_taken_as_now() -> None:
    """The API server's clock runs ahead of ours: the window still ends `grace` after start."""
    now = [START]
    t = tracker(now)
    t.observe(inventory(START + 3600))
    assert t.settle_by() == {KEY: START + GRACE}
    now[0] = START + GRACE
    assert t.settle_by() == {}


def test_a_slice_trigger_time_starts_the_window() -> None:
    """An old Service whose endpoints changed (a pod became ready) just before start."""
    t = tracker([START])
    t.observe(inventory(START - 3600, web_slice(created_at=START - 3600, trigger_time=START - 5.5)))
    assert t.settle_by() == {KEY: START - 5.5 + GRACE}


def test_a_slice_created_just_before_start_starts_the_window() -> None:
    """A slice with no trigger time (mirrored, hand-made) still has its creation."""
    t = tracker([START])
    t.observe(inventory(START - 3600, web_slice(created_at=START - 1)))
    assert t.settle_by() == {KEY: START - 1 + GRACE}


def test_the_latest_recorded_change_counts() -> None:
    t = tracker([START])
    t.observe(inventory(START - 20, web_slice(created_at=START - 20, trigger_time=START - 3)))
    assert t.settle_by() == {KEY: START - 3 + GRACE}


def test_baseline_changes_are_remembered_for_path_sampling() -> None:
    t = tracker([START])
    t.observe(model.Inventory([dataclasses.replace(service("old"), created_at=START - 3600),
                               dataclasses.replace(service("a"), created_at=START - 300),
                               dataclasses.replace(service("b"), created_at=START - 2)]))
    assert t.recently_changed() == [("shop", "b"), ("shop", "a")]
    assert REMEMBER_SECONDS < 3600


def test_a_metadata_only_update_is_no_change() -> None:
    now = [START]
    t = tracker(now)
    t.observe(inventory(START - 3600, web_slice(created_at=START - 3600)))
    now[0] = START + 60
    # New recorded times with nothing the model compares changed: not a change.
    t.observe(inventory(START + 50, web_slice(created_at=START + 50, trigger_time=START + 55)))
    assert t.settle_by() == {}


def test_after_the_baseline_a_change_counts_from_when_the_agent_saw_it() -> None:
    now = [START]
    t = tracker(now)
    t.observe(inventory(START - 3600, web_slice(created_at=START - 3600)))
    now[0] = START + 600
    # The ready endpoint moved; the slice's recorded times are old or ahead of us: neither counts.
    t.observe(inventory(START - 3600, web_slice(created_at=START - 3600, trigger_time=START + 9999,
                                                address="198.18.1.2")))
    assert t.settle_by() == {KEY: START + 600 + GRACE}
    # A Service that appears later counts from when it was seen, however old its creation.
    now[0] = START + 700
    t.observe(model.Inventory([*inventory(START - 3600).services.values(),
                               dataclasses.replace(service("late"), created_at=START - 3600)]))
    assert t.settle_by()[("shop", "late")] == START + 700 + GRACE
