"""preconditions.py: (a)'s verdict both ways, (b)'s reach and worth against hand computations, the
pools' contents."""

import pytest

import preconditions
from curriculum import program_complexity
from toytasks import fresh_tasks, heldout


def test_the_world_holds_when_the_pools_differ_beyond_their_spread():
    verdict = preconditions.world_verdict({"easiest": [60.0, 61.0, 59.0], "proposed": [55.0, 56.0, 54.0],
                                           "hardest": [50.0, 50.5, 49.5]})
    assert (verdict["best"], verdict["worst"]) == ("easiest", "hardest")
    assert verdict["difference"] == pytest.approx(10.0) and verdict["spread"] == pytest.approx(1.0)
    assert verdict["holds"]


def test_the_world_fails_when_the_difference_is_within_the_spread_and_the_gap():
    # 6 points apart, but the worst pool's seeds spread 2 (sample std): 4 beyond, under 5
    verdict = preconditions.world_verdict({"easiest": [56.0, 56.0, 56.0], "hardest": [48.0, 50.0, 52.0]})
    assert verdict["difference"] == pytest.approx(6.0) and verdict["spread"] == pytest.approx(2.0)
    assert not verdict["holds"]
    assert preconditions.world_verdict({"easiest": [56.0, 56.0, 56.0], "hardest": [48.0, 50.0, 52.0]}, gap=4.0)["holds"]


def test_one_seed_has_no_spread():
    verdict = preconditions.world_verdict({"a": [60.0], "b": [54.0]})
    assert verdict["spread"] == 0 and verdict["holds"]


def test_interpolate_reads_the_line_and_is_flat_beyond_it():
    line = [(20.0, 40.0), (10.0, 60.0), (30.0, 50.0)]  # unsorted on purpose
    assert preconditions.interpolate(15.0, line) == pytest.approx(50.0)
    assert preconditions.interpolate(25.0, line) == pytest.approx(45.0)
    assert preconditions.interpolate(5.0, line) == 60.0 and preconditions.interpolate(99.0, line) == 50.0
    assert preconditions.interpolate(20.0, line) == pytest.approx(40.0)


def task(step, program, valid=True):
    return {"step": step, "program": program, "valid": valid, "type": "deduction", "inputs": ["1"], "outputs": ["1"],
            "message": ""}


def test_reach_compares_the_first_and_the_last_quarter_of_valid_proposals():
    small, large = "def f(a):\n    return a", "def f(a):\n    c = sorted(a)\n    return [v * 2 for v in c]"
    n_small, n_large = program_complexity(small)["nodes"], program_complexity(large)["nodes"]
    records = [task(1, small), task(2, small), task(2, large, valid=False),  # first quarter of 8: steps 1-2
               task(4, large), task(5, small),                                # the middle: not read
               task(7, large), task(8, large), task(8, small)]                # last quarter: steps 7-8
    move = preconditions.reach(records, 8)
    assert move["first"] == pytest.approx(n_small)
    assert move["last"] == pytest.approx((2 * n_large + n_small) / 3)
    assert move["move"] == pytest.approx(move["last"] - n_small)
    assert preconditions.reach([task(8, large)], 8)["first"] is None


def test_worth_is_the_line_at_the_last_quarter_less_at_the_first():
    line = [(10.0, 60.0), (20.0, 40.0)]
    assert preconditions.worth({"first": 12.0, "last": 18.0}, line) == pytest.approx(44.0 - 56.0)
    assert preconditions.worth({"first": 12.0, "last": 12.0}, line) == 0
    assert preconditions.worth({"first": None, "last": 12.0}, line) is None


def test_the_depth_pools_hold_fresh_tasks_of_one_depth_and_no_held_out_program():
    fresh = {(g.task.program, tuple(g.task.inputs)): g.depth for g in fresh_tasks()}
    held = {t.task.program.strip() for t in heldout()}
    for depth in (1, 3):
        pool = preconditions.depth_pool(depth)
        assert len(pool) > 100
        assert all(fresh[(r["program"], tuple(r["inputs"]))] == depth for r in pool)
        assert not {r["program"].strip() for r in pool} & held


def test_the_proposed_pool_keeps_each_valid_triplet_once(monkeypatch):
    records = [{**task(0, "def f(a):\n    return a"), "phase": "triplet"},
               {**task(0, "def f(a):\n    return a"), "phase": "triplet", "inputs": [" 1"]},  # the same input value
               {**task(0, "def f(a):\n    return -a"), "phase": "triplet", "valid": False},
               {**task(0, "def f(a):\n    return a + 1"), "phase": "induction", "inputs": ["1", "2"]},
               {**task(0, "def f(a):\n    return a * 2"), "phase": "triplet"}]
    monkeypatch.setattr(preconditions, "seed_buffers", lambda model, tokenizer, buffers, args: records)
    pool = preconditions.proposed_pool(None, None, None)
    assert [r["program"] for r in pool] == ["def f(a):\n    return a", "def f(a):\n    return a * 2"]
    assert set(pool[0]) == set(preconditions.TASK_FIELDS)


def test_numbers_section_and_figure(tmp_path):
    pools = {"easiest": [task(0, "def f(a):\n    return a")] * 2,
             "proposed": [task(0, "def f(a):\n    return sorted(a)")],
             "hardest": [task(0, "def f(a):\n    c = sorted(a)\n    return [v * 2 for v in c]")]}
    evaluation = lambda d, a: {"toy deduction": {"pass_at_k": {"1": d}}, "toy abduction": {"pass_at_k": {"1": a}}}  # noqa: E731
    evaluations = {"easiest": [evaluation(0.6, 0.5), evaluation(0.62, 0.5)], "proposed": [evaluation(0.55, 0.5)] * 2,
                   "hardest": [evaluation(0.4, 0.4), evaluation(0.42, 0.4)]}
    runs = [("azr", 0, [task(1, "def f(a):\n    return a"), task(8, "def f(a):\n    return sorted(a)")], 8)]
    numbers = preconditions.precondition_numbers(pools, evaluations, runs)
    assert numbers["pools"]["easiest"]["pass_at_1"] == [pytest.approx(55.0), pytest.approx(56.0)]
    assert numbers["pools"]["easiest"]["tasks"] == 2
    assert numbers["world"]["best"] == "easiest" and numbers["world"]["worst"] == "hardest"
    (run,) = numbers["runs"]
    assert run["worth"] == pytest.approx(52.5 - 55.5)  # from the easiest pool's size to the proposed one's
    text = "\n".join(preconditions.preconditions_section(numbers))
    assert "(a) holds: easiest minus hardest = 15.0 points" in text and "azr-seed0" in text
    assert "With one seed" not in text and "| easiest | 2 | 6.0 | 55.5 ± 0.7 |" in text
    preconditions.plot_preconditions(numbers, str(tmp_path / "p.png"))
    assert (tmp_path / "p.png").stat().st_size > 0


def worth_runs(worths):
    return [{"method": m, "seed": s, "worth": w} for m, ws in worths.items() for s, w in enumerate(ws)]


def test_a_learned_proposer_whose_move_is_worth_more_than_the_frozen_ones_is_measurable():
    got = preconditions.reach_verdict(worth_runs({"azr": [3.0, 3.2, 2.8], "azr-frozen": [0.1, 0.0, 0.2]}))
    assert got["learned"]["azr"]["beyond_frozen"] == pytest.approx(2.9) and got["learned"]["azr"]["measurable"]


def test_a_move_the_frozen_proposer_makes_too_is_small():
    # toy-v3's three seeds (worth in points): the learned proposer's lead is within its spread
    got = preconditions.reach_verdict(worth_runs({"azr": [0.6, 0.6, 1.1], "azr-frozen": [-0.1, 0.2, 1.0]}))
    assert not got["learned"]["azr"]["measurable"] and got["learned"]["azr"]["spread"] == pytest.approx(0.5686, abs=1e-3)
    # beyond the frozen one by more than the spread, but by less than the 1-point floor: still small
    assert not preconditions.reach_verdict(worth_runs({"azr": [0.9, 0.9], "azr-frozen": [0.1, 0.1]}))["learned"]["azr"]["measurable"]
    assert preconditions.reach_verdict(worth_runs({"azr": [0.9]}))["learned"] == {}  # no frozen run: no verdict


def test_the_section_summarises_each_method_and_says_b():
    runs = [{"method": m, "seed": s, "first": 10.0, "last": 10.0 + move, "move": move, "worth": move}
            for m, moves in {"azr": [3.0, 3.4], "azr-frozen": [0.0, 0.2]}.items() for s, move in enumerate(moves)]
    numbers = {"pools": {"easiest": {"tasks": 1, "nodes": 5.0, "pass_at_1": [50.0], "deduction": [50.0], "abduction": [50.0]}},
               "world": preconditions.world_verdict({"easiest": [50.0]}), "runs": runs,
               "reach": preconditions.reach_verdict(runs)}
    text = "\n".join(preconditions.preconditions_section(numbers))
    assert "| **azr** (2 seeds) | 10.0 ± 0.0 | 13.2 ± 0.3 | 3.2 ± 0.3 | 3.2 ± 0.3 |" in text
    assert "(b) azr: measurable: its move is worth +3.1 points beyond the frozen proposer's" in text


def test_long_runs_are_held_against_the_frozen_proposers_long_runs():
    got = preconditions.reach_verdict(worth_runs({"azr": [0.5, 0.6], "azr-frozen": [0.4, 0.5],
                                                  "azr-long": [4.0, 4.2], "azr-frozen-long": [0.5, 0.7]}))
    assert not got["learned"]["azr"]["measurable"] and got["learned"]["azr-long"]["measurable"]
    assert got["learned"]["azr-long"]["beyond_frozen"] == pytest.approx(3.5)
