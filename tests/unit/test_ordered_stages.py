"""The overlapped stages behind the worker: order kept, a few jobs in flight, a bug costs one job."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from consumers.ordered_stages import OrderedStages

PATIENCE_S = 60.0


class WouldWait(Exception):
    pass


@dataclass
class Job:
    number: int
    crashed: bool = False
    seen: list[str] = field(default_factory=list)


def collect(stages: OrderedStages[Job], count: int) -> list[Job]:
    done: list[Job] = []
    deadline = time.monotonic() + PATIENCE_S
    while len(done) < count and time.monotonic() < deadline:
        done += stages.completed(wait_s=0.05)
    return done


def test_jobs_leave_in_the_order_they_came_through_every_stage() -> None:
    stop = threading.Event()
    first = lambda job: job.seen.append("first")  # noqa: E731
    second = lambda job: (time.sleep(0.001 * (job.number % 3)), job.seen.append("second"))  # noqa: E731
    stages: OrderedStages[Job] = OrderedStages([first, second], stop=stop)
    try:
        feeder = threading.Thread(target=lambda: [stages.submit(Job(number)) for number in range(50)])
        feeder.start()
        done = collect(stages, 50)
        feeder.join()
    finally:
        stop.set()
        stages.close()
    assert [job.number for job in done] == list(range(50))
    assert all(job.seen == ["first", "second"] for job in done)
    assert stages.in_flight == 0


def test_a_blocked_last_stage_holds_back_all_but_a_few_jobs() -> None:
    stop, release = threading.Event(), threading.Event()
    stages: OrderedStages[Job] = OrderedStages([lambda job: None, lambda job: release.wait()], stop=stop)
    accepted = 0

    def give_up() -> None:
        raise WouldWait

    try:
        for number in range(10):
            try:
                stages.submit(Job(number), while_waiting=give_up)
            except WouldWait:
                break
            accepted += 1
            time.sleep(0.2)  # lets the job move on to the next free slot
        # One job per stage plus one in each one-slot queue in front of the stages.
        assert 2 <= accepted <= 4
        release.set()
        assert [job.number for job in collect(stages, accepted)] == list(range(accepted))
    finally:
        stop.set()
        stages.close()


def test_a_stage_that_raises_marks_the_job_and_the_next_jobs_go_on() -> None:
    stop = threading.Event()

    def buggy(job: Job) -> None:
        if job.number == 1:
            raise RuntimeError("a bug")
        job.seen.append("buggy")

    stages: OrderedStages[Job] = OrderedStages([buggy, lambda job: job.seen.append("last")], stop=stop)
    try:
        for number in range(3):
            assert stages.submit(Job(number))
        done = collect(stages, 3)
    finally:
        stop.set()
        stages.close()
    assert [(job.number, job.crashed, job.seen) for job in done] == [
        (0, False, ["buggy", "last"]), (1, True, ["last"]), (2, False, ["buggy", "last"])]


def test_there_is_room_while_fewer_jobs_are_in_flight_than_stages() -> None:
    stop, release = threading.Event(), threading.Event()
    stages: OrderedStages[Job] = OrderedStages([lambda job: release.wait(), lambda job: None], stop=stop)
    try:
        assert stages.has_room()
        stages.submit(Job(0))
        assert stages.has_room()
        stages.submit(Job(1))
        assert not stages.has_room(), "two jobs, two stages: the next batch should wait and grow"
        release.set()
        collect(stages, 2)
        assert stages.has_room() and stages.in_flight == 0
    finally:
        stop.set()
        stages.close()


def test_submit_gives_up_once_stop_is_set() -> None:
    stop = threading.Event()
    release = threading.Event()
    stages: OrderedStages[Job] = OrderedStages([lambda job: release.wait()], stop=stop)
    try:
        while stages.submit(Job(0), while_waiting=stop.set):
            pass
        assert stop.is_set()
    finally:
        release.set()
        stages.close()


def test_caught_up_tells_whether_a_stage_has_finished_every_job() -> None:
    stop, release = threading.Event(), threading.Event()
    stages: OrderedStages[Job] = OrderedStages([lambda job: release.wait(), lambda job: None], stop=stop)
    try:
        assert stages.caught_up(0)
        stages.submit(Job(0))
        assert not stages.caught_up(0), "the model stage holds a batch: the next one should keep growing"
        release.set()
        collect(stages, 1)
        assert stages.caught_up(0) and stages.caught_up(-1)
    finally:
        stop.set()
        stages.close()
