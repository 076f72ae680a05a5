"""The overlapped stages behind the worker: order kept, a few jobs in flight, a bug costs one job."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

from consumers.ordered_stages import Lanes, OrderedStages

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


def feed_and_collect(stages: OrderedStages[Job], stop: threading.Event, count: int) -> list[Job]:
    """Jobs 0..count-1 submitted from a thread of their own while this one collects them; then stop."""
    try:
        feeder = threading.Thread(target=lambda: [stages.submit(Job(number)) for number in range(count)])
        feeder.start()
        done = collect(stages, count)
        feeder.join()
    finally:
        stop.set()
        stages.close()
    return done


def test_jobs_leave_in_the_order_they_came_through_every_stage() -> None:
    stop = threading.Event()
    first = lambda job: job.seen.append("first")  # noqa: E731
    second = lambda job: (time.sleep(0.001 * (job.number % 3)), job.seen.append("second"))  # noqa: E731
    stages: OrderedStages[Job] = OrderedStages([first, second], stop=stop)
    done = feed_and_collect(stages, stop, 50)
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


def test_lane_free_tells_whether_a_stage_has_finished_every_job() -> None:
    stop, release = threading.Event(), threading.Event()
    stages: OrderedStages[Job] = OrderedStages([lambda job: release.wait(), lambda job: None], stop=stop)
    try:
        assert stages.lane_free(0)
        stages.submit(Job(0))
        assert not stages.lane_free(0), "the model stage holds a batch: the next one should keep growing"
        release.set()
        collect(stages, 1)
        assert stages.lane_free(0) and stages.lane_free(-1)
    finally:
        stop.set()
        stages.close()


def test_a_stage_with_two_lanes_runs_two_jobs_at_once() -> None:
    stop = threading.Event()
    together = threading.Barrier(2, timeout=PATIENCE_S)
    stages: OrderedStages[Job] = OrderedStages([Lanes(lambda job: together.wait(), count=2)], stop=stop)
    try:
        assert stages.submit(Job(0)) and stages.submit(Job(1))
        done = collect(stages, 2)
    finally:
        stop.set()
        stages.close()
    assert [(job.number, job.crashed) for job in done] == [(0, False), (1, False)], "one lane would break the barrier"


def test_a_job_that_finishes_out_of_turn_waits_but_its_lane_goes_on() -> None:
    stop, release = threading.Event(), threading.Event()
    ran: list[int] = []

    def score(job: Job) -> None:
        if job.number == 0:
            assert release.wait(PATIENCE_S)
        ran.append(job.number)

    stages: OrderedStages[Job] = OrderedStages([Lanes(score, count=2), lambda job: job.seen.append("written")],
                                               stop=stop)
    try:
        for number in range(3):
            assert stages.submit(Job(number))
        deadline = time.monotonic() + PATIENCE_S
        while len(ran) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ran == [1, 2], "the free lane took job 2 while job 1 waited for job 0"
        assert stages.completed() == [], "nothing may leave before job 0"
        release.set()
        done = collect(stages, 3)
    finally:
        stop.set()
        stages.close()
    assert [(job.number, job.seen) for job in done] == [(0, ["written"]), (1, ["written"]), (2, ["written"])]


def test_jobs_keep_their_order_through_lanes_of_uneven_speed() -> None:
    stop = threading.Event()
    pace = random.Random(3)
    delays = [pace.random() * 0.004 for _ in range(200)]
    order: list[int] = []
    stages: OrderedStages[Job] = OrderedStages(
        [Lanes(lambda job: time.sleep(delays[job.number]), count=3), lambda job: order.append(job.number)], stop=stop)
    done = feed_and_collect(stages, stop, 200)
    assert order == list(range(200)), "the stage after the lanes saw them in order"
    assert [job.number for job in done] == list(range(200))
    assert stages.in_flight == 0


def test_a_lane_is_free_until_every_lane_holds_a_job_and_room_counts_every_lane() -> None:
    stop, release = threading.Event(), threading.Event()
    stages: OrderedStages[Job] = OrderedStages([Lanes(lambda job: release.wait(), count=2), lambda job: None],
                                               stop=stop)
    try:
        stages.submit(Job(0))
        assert stages.lane_free(0) and stages.has_room()
        stages.submit(Job(1))
        assert not stages.lane_free(0), "both lanes busy: the next batch should keep growing"
        assert stages.has_room(), "three lanes in all, two jobs"
        stages.submit(Job(2))
        assert not stages.has_room()
        release.set()
        collect(stages, 3)
        assert stages.lane_free(0) and stages.has_room()
    finally:
        stop.set()
        stages.close()


def test_each_lane_starts_once_in_its_own_thread() -> None:
    stop = threading.Event()
    started: list[str] = []
    stages: OrderedStages[Job] = OrderedStages(
        [Lanes(lambda job: None, count=2, start=lambda: started.append(threading.current_thread().name))],
        stop=stop, name="model")
    try:
        for number in range(6):
            assert stages.submit(Job(number))
        collect(stages, 6)
    finally:
        stop.set()
        stages.close()
    assert sorted(started) == ["model-0.0", "model-0.1"]


def test_close_ends_every_lane_once_stop_is_set_without_waiting_out_its_timeout() -> None:
    stop, release = threading.Event(), threading.Event()
    running: list[int] = []
    stages: OrderedStages[Job] = OrderedStages(
        [Lanes(lambda job: (running.append(job.number), release.wait()), count=2), lambda job: None], stop=stop)
    assert stages.submit(Job(0)) and stages.submit(Job(1))
    deadline = time.monotonic() + PATIENCE_S
    while len(running) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()  # both lanes busy: they will end on their own after their job, taking no _END
    closer = threading.Thread(target=stages.close, kwargs={"timeout_s": 3 * PATIENCE_S}, daemon=True)
    closer.start()
    slot = stages._inputs[0]  # the moment close has offered its first _END
    while not slot.full() and closer.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    closer.join(PATIENCE_S)
    assert not closer.is_alive(), "close blocked on a full slot that no lane would empty"


def test_close_ends_every_lane_when_stop_was_never_set() -> None:
    stop = threading.Event()
    stages: OrderedStages[Job] = OrderedStages([Lanes(lambda job: None, count=2), lambda job: None], stop=stop,
                                               name="unstopped")
    assert stages.submit(Job(0))
    collect(stages, 1)
    stages.close(timeout_s=PATIENCE_S)
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("unstopped-")]
