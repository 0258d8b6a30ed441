"""Service failing/recovered log events, rate-limited, and the JSON log lines they become."""

from __future__ import annotations

import json
import logging
import re

import pytest

from agent.cli import _JsonFormatter
from agent.transitions import HOLD_SECONDS, MAX_EVENTS, ServiceTransitions

WEB = ("shop", "web", "tcp", "endpoint", "refused")
WEB_DNS = ("shop", "web", "dns", "resolver", "nxdomain")


def events(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    out = [(r.levelname, getattr(r, "event", "")) for r in caplog.records if r.name == "agent.transitions"]
    caplog.clear()
    return out


def test_one_event_when_failing_starts_and_one_when_it_ends(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "agent.transitions")
    now = [1000.0]
    t = ServiceTransitions(clock=lambda: now[0])
    t.update([WEB, WEB_DNS])
    [record] = [r for r in caplog.records if r.name == "agent.transitions"]
    assert record.getMessage() == "Service shop/web started failing: tcp endpoint refused, dns resolver nxdomain"
    assert events(caplog) == [("WARNING", "service_failing")]
    for _ in range(3):  # still failing: nothing new to say
        now[0] += 30
        t.update([WEB])
    assert events(caplog) == []
    now[0] += HOLD_SECONDS
    t.update([])
    record = next(r for r in caplog.records if r.name == "agent.transitions")
    assert record.getMessage() == f"Service shop/web recovered after {90 + HOLD_SECONDS:.0f}s"
    assert events(caplog) == [("INFO", "service_recovered")]


def test_a_flapping_service_logs_again_only_after_the_hold(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "agent.transitions")
    now = [0.0]
    t = ServiceTransitions(clock=lambda: now[0])
    seen = []
    for sweep in range(40):  # every other sweep, 30 s apart: 20 minutes
        t.update([WEB] if sweep % 2 == 0 else [])
        seen += events(caplog)
        now[0] += 30
    assert 4 <= len(seen) <= 2 * (40 * 30 / HOLD_SECONDS + 1)  # not 40 lines


def test_many_services_at_once_end_in_one_summary_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "agent.transitions")
    t = ServiceTransitions(clock=lambda: 0.0)
    t.update([("team", f"app{i}", "tcp", "cluster_ip", "timeout") for i in range(MAX_EVENTS + 7)])
    assert caplog.records[-1].getMessage() == "... and 7 more Services (service_failing)"
    assert events(caplog) == [("WARNING", "service_failing")] * MAX_EVENTS + [("WARNING", "service_failing_more")]


def test_json_log_lines_have_rfc3339_time_and_their_own_fields() -> None:
    record = logging.LogRecord("agent.transitions", logging.WARNING, __file__, 1, "Service %s started failing",
                               ("shop/web",), None)
    record.created = 1796656302.7139
    record.event, record.namespace, record.service, record.failing = "service_failing", "shop", "web", ["tcp"]
    line = json.loads(_JsonFormatter().format(record))
    assert line["ts"] == "2026-12-07T15:11:42.713Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["ts"])
    assert (line["level"], line["msg"]) == ("warning", "Service shop/web started failing")
    assert (line["event"], line["namespace"], line["service"], line["failing"]) == \
        ("service_failing", "shop", "web", ["tcp"])
    assert "args" not in line and "levelno" not in line  # only the event's own fields


def test_a_short_failure_still_logs_its_recovery(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "agent.transitions")
    now = [0.0]
    t = ServiceTransitions(clock=lambda: now[0])
    t.update([WEB])
    now[0] = 60.0
    t.update([])
    assert events(caplog) == [("WARNING", "service_failing"), ("INFO", "service_recovered")]
    now[0] = 90.0  # fails again within the hold: no new start, so no recovery either
    t.update([WEB])
    now[0] = 120.0
    t.update([])
    assert events(caplog) == []
