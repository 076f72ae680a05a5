"""How the model's CPU threads are split into lanes, and that each lane's share stays in its thread."""

from __future__ import annotations

import sys
import threading

import pytest
import torch

from pipeline.scoring.lanes import CPU_LANES, ModelLanes, share_the_gil

CPU = torch.device("cpu")


@pytest.mark.parametrize(("threads", "lanes", "expected"), [
    (2, 0, ModelLanes(2, 1)),
    (16, 0, ModelLanes(CPU_LANES, 16 // CPU_LANES)),
    (1, 0, ModelLanes(1, 1)),
    (4, 1, ModelLanes(1, 4)),
    (6, 3, ModelLanes(3, 2)),
    (2, 4, ModelLanes(2, 1)),
])
def test_cpu_threads_split_into_lanes_of_at_least_one_thread(threads: int, lanes: int, expected: ModelLanes) -> None:
    assert ModelLanes.for_device(CPU, threads, lanes) == expected


def test_a_gpu_runs_one_lane_unless_told_otherwise() -> None:
    assert ModelLanes.for_device(torch.device("cuda"), 16) == ModelLanes(1, None)
    assert ModelLanes.for_device(torch.device("cuda"), 16, lanes=2) == ModelLanes(2, None)


def test_a_lane_sets_its_own_threads_and_leaves_the_callers() -> None:
    before = torch.get_num_threads()
    seen: list[int] = []

    def lane() -> None:
        ModelLanes(2, 1).enter()
        seen.append(torch.get_num_threads())

    thread = threading.Thread(target=lane)
    thread.start()
    thread.join()
    assert seen == [1]
    assert torch.get_num_threads() == before


def test_the_gil_is_handed_over_sooner_and_never_later() -> None:
    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)
        share_the_gil(0.0005)
        assert sys.getswitchinterval() == pytest.approx(0.0005)
        sys.setswitchinterval(0.0001)
        share_the_gil(0.0005)
        assert sys.getswitchinterval() == pytest.approx(0.0001), "a shorter interval someone chose stays"
    finally:
        sys.setswitchinterval(before)
