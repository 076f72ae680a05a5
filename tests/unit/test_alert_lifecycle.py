"""The alert lifecycle state machine: fire once, escalate, repeat, resolve; passes compose."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from pipeline.alerting.candidate import Candidate
from pipeline.alerting.lifecycle import ESCALATED, FIRED, REPEATED, RESOLVED, LifecyclePolicy, Transition, advance

WIDTH = 300
T0 = datetime(2026, 3, 2, tzinfo=timezone.utc)
POLICY = LifecyclePolicy(resolve_buckets=3, repeat_interval=timedelta(hours=1))


def bucket(k: int) -> datetime:
    return T0 + timedelta(seconds=WIDTH * k)


def candidate(k: int, severity: str = "warning", entity: str = "PFE", rule: str = "negative_spike") -> Candidate:
    return Candidate(entity=entity, rule=rule, bucket_start=bucket(k), severity=severity, value=0.8, baseline=0.1)


def kinds(transitions: list[Transition]) -> list[tuple[str, int]]:
    return [(t.kind, int((t.bucket_start - T0).total_seconds()) // WIDTH) for t in transitions]


def test_one_trigger_fires_once_then_resolves_after_quiet_buckets() -> None:
    firing, transitions = advance({}, [candidate(10)], WIDTH, bucket(0), bucket(30), POLICY)
    assert kinds(transitions) == [(FIRED, 10), (RESOLVED, 13)]
    assert firing == {}
    resolved = transitions[-1].state
    assert resolved.resolved_at == bucket(14)
    assert resolved.dedup_key == f"PFE/negative_spike/300s@{bucket(10).isoformat()}"


def test_a_firing_alert_is_not_raised_again_but_repeats_after_the_interval() -> None:
    rows = [candidate(k) for k in range(10, 30)]
    firing, transitions = advance({}, rows, WIDTH, bucket(0), bucket(29), POLICY)
    assert kinds(transitions) == [(FIRED, 10), (REPEATED, 22)]
    assert list(firing) == ["PFE/negative_spike/300s"]


def test_rising_severity_escalates_and_falling_severity_does_not() -> None:
    rows = [candidate(10), candidate(11, "critical"), candidate(12, "warning")]
    _, transitions = advance({}, rows, WIDTH, bucket(0), bucket(12), POLICY)
    assert kinds(transitions) == [(FIRED, 10), (ESCALATED, 11)]
    assert transitions[-1].state.severity == "critical"


def test_an_acknowledged_alert_does_not_repeat() -> None:
    firing, _ = advance({}, [candidate(10)], WIDTH, bucket(0), bucket(10), POLICY)
    acked = {key: replace(state, acked=True) for key, state in firing.items()}
    _, transitions = advance(acked, [candidate(k) for k in range(11, 40)], WIDTH, bucket(11), bucket(39), POLICY)
    assert transitions == []


def test_hot_buckets_keep_an_alert_firing_until_the_value_is_back_within_its_baseline() -> None:
    """Thin buckets still past the threshold are not quiet: the story goes on, so does the alert."""
    thin = [replace(candidate(k), triggered=False) for k in (11, 12, 13, 14)]
    _, transitions = advance({}, [candidate(10), *thin], WIDTH, bucket(0), bucket(30), POLICY)
    assert kinds(transitions) == [(FIRED, 10), (RESOLVED, 17)]
    _, hot_only = advance({}, thin, WIDTH, bucket(0), bucket(30), POLICY)
    assert hot_only == [], "a hot bucket never fires an alert"


def test_a_new_episode_after_resolution_is_a_new_alert() -> None:
    _, transitions = advance({}, [candidate(10), candidate(20)], WIDTH, bucket(0), bucket(30), POLICY)
    assert kinds(transitions) == [(FIRED, 10), (RESOLVED, 13), (FIRED, 20), (RESOLVED, 23)]
    assert transitions[0].state.dedup_key != transitions[2].state.dedup_key


def test_fingerprints_are_independent() -> None:
    rows = [candidate(10), candidate(10, entity="BA"), candidate(10, rule="negative_buzz")]
    firing, transitions = advance({}, rows, WIDTH, bucket(0), bucket(10), POLICY)
    assert sorted(firing) == ["BA/negative_spike/300s", "PFE/negative_buzz/300s", "PFE/negative_spike/300s"]
    assert [t.kind for t in transitions] == [FIRED] * 3


def test_many_small_passes_equal_one_pass() -> None:
    """A scheduler judging one bucket per pass ends where a backtest over the range ends."""
    rows = [candidate(k, "critical" if k == 15 else "warning") for k in (*range(5, 9), *range(12, 40), 50)]
    _, at_once = advance({}, rows, WIDTH, bucket(0), bucket(60), POLICY)
    firing: dict[str, Any] = {}
    step_by_step: list[Transition] = []
    for k in range(0, 61):
        firing, changes = advance(firing, [r for r in rows if r.bucket_start == bucket(k)], WIDTH, bucket(k), bucket(k), POLICY)
        step_by_step.extend(changes)
    assert kinds(step_by_step) == kinds(at_once)
    assert [t.state for t in step_by_step] == [t.state for t in at_once]
