"""Campaigns' pure logic: parameters typed by their defaults, the grid and its orders, the state
records (round trips, crafted files refused), the confidence intervals."""

from __future__ import annotations

import json
import math
import random
import statistics
from pathlib import Path

import pytest

from unicorn_ansible.campaign.parameters import (
    ExperimentArguments,
    declared_parameters,
    parse_assignments,
    split_values,
    typed,
)
from unicorn_ansible.campaign.plan import combinations, ordered, run_name
from unicorn_ansible.campaign.records import CampaignSpec, CombinationState, CombinationStatus
from unicorn_ansible.campaign.stats import mean_interval, t95
from unicorn_ansible.campaign.store import CampaignDir
from unicorn_ansible.errors import UntrustedDataError, UsageError
from unicorn_ansible.model.experiment import Experiment


def experiment(nodes, rate=10, size="1M", loss=0.5, verbose=False, extra=None):  # noqa: ANN001
    return Experiment()


def spec(**changes: object) -> CampaignSpec:
    fields: dict[str, object] = {"name": "rates", "experiment": "/lab/exp.py",
                                 "parameters": (("rate", (10, 20, 50)), ("size", ("1M", "10M")), ("verbose", (False,))),
                                 "repeat": 3, "inventory": ("/lab/hosts.ini",), "created": 1795558000.5}
    fields.update(changes)
    return CampaignSpec(**fields)  # type: ignore[arg-type]


# -- parameters ----------------------------------------------------------------------
def test_parameters_are_the_keyword_arguments_after_the_node_pool_typed_by_their_defaults() -> None:
    declared, unsettable = declared_parameters(experiment)
    assert {name: p.kind for name, p in declared.items()} == {"rate": int, "size": str, "loss": float,
                                                              "verbose": bool}
    assert "extra" in unsettable  # a None default: not a parameter -p can set
    values = typed(declared, {"rate": "20", "loss": "1", "verbose": "yes", "size": "10M"}, "exp.py")
    assert values == {"rate": 20, "size": "10M", "loss": 1.0, "verbose": True}
    assert type(values["loss"]) is float and type(values["rate"]) is int
    assert typed(declared, {}, "exp.py") == {"rate": 10, "size": "1M", "loss": 0.5, "verbose": False}
    # Python values: kept when of the parameter's type (an int for a float), text converted
    assert typed(declared, {"rate": 30, "loss": 2, "verbose": False}, "exp.py")["loss"] == 2.0


@pytest.mark.parametrize(("given", "expected"), [
    ({"rat": "10"}, "has no parameter rat; its parameters: rate=10, size='1M', loss=0.5, verbose=False"),
    ({"rate": "ten"}, "-p rate=ten: rate takes an int; exp.py's parameters: rate=10"),
    ({"rate": "2.5"}, "rate takes an int"),
    ({"loss": "nan"}, "loss takes a finite float"),
    ({"verbose": "maybe"}, "verbose takes a bool (true/false"),
    ({"extra": "1"}, "argument extra of experiment() defaults to a NoneType"),
    ({"rate": True}, "rate takes a int, not a bool"),
])
def test_a_wrong_name_or_value_is_one_line_naming_the_parameters(given: dict[str, object], expected: str) -> None:
    declared, unsettable = declared_parameters(experiment)
    with pytest.raises(UsageError) as error:
        typed(declared, given, "exp.py", unsettable=unsettable)
    assert expected in str(error.value) and "\n" not in str(error.value)


def test_assignments_and_sweep_values_are_parsed_and_malformed_ones_refused() -> None:
    assert parse_assignments(["rate=20", "size=a=b"]) == {"rate": "20", "size": "a=b"}
    assert split_values("10, 20,50", "rate") == ["10", "20", "50"]
    for bad in (["rate"], ["=1"], ["2x=1"], ["rate=1", "rate=2"]):
        with pytest.raises(UsageError):
            parse_assignments(bad)
    for bad in ("", "10,,20", "10,10"):
        with pytest.raises(UsageError):
            split_values(bad, "rate")


def test_an_experiment_made_at_module_level_takes_no_parameters() -> None:
    arguments = ExperimentArguments({"rate": "20"}, "exp.py")
    with pytest.raises(UsageError, match="made when the file loads and takes no parameters"):
        arguments(Experiment())
    assert ExperimentArguments({}, "exp.py")(Experiment()) == {}
    function = ExperimentArguments({"rate": "20"}, "exp.py")
    assert function(experiment) == {"rate": 20, "size": "1M", "loss": 0.5, "verbose": False}
    assert function.parameters["rate"] == 20


# -- the grid and its order ----------------------------------------------------------
def test_the_grid_numbers_every_combination_repeats_outermost() -> None:
    grid = combinations(spec())
    assert len(grid) == spec().count == 18
    assert [c.index for c in grid] == list(range(1, 19))
    assert grid[0].parameters == {"rate": 10, "size": "1M", "verbose": False} and grid[0].repeat == 1
    assert grid[1].parameters["size"] == "10M" and grid[2].parameters["rate"] == 20
    assert [c.repeat for c in grid] == [1] * 6 + [2] * 6 + [3] * 6
    assert {tuple(c.parameters.values()) for c in grid[:6]} == {tuple(c.parameters.values()) for c in grid[6:12]}


def test_random_order_is_a_shuffle_fixed_by_its_seed_and_grid_order_is_by_number() -> None:
    grid = combinations(spec())
    assert [c.index for c in ordered(grid, "grid", None)] == list(range(1, 19))
    first = [c.index for c in ordered(grid, "random", 7)]
    assert first == [c.index for c in ordered(list(reversed(grid)), "random", 7)]  # whatever order it is given in
    assert sorted(first) == list(range(1, 19)) and first != list(range(1, 19))
    assert first != [c.index for c in ordered(grid, "random", 8)]
    with pytest.raises(ValueError):
        ordered(grid, "sideways", None)


def test_run_names_follow_from_the_spec_alone() -> None:
    assert run_name(spec(), 3, 1) == "rates-0003"
    assert run_name(spec(), 3, 2) == "rates-0003-2"
    big = spec(parameters=(("rate", tuple(range(200))),), repeat=100)
    assert run_name(big, 7, 1) == "rates-00007"


# -- records -------------------------------------------------------------------------
def test_records_round_trip_through_json() -> None:
    rng = random.Random(26)
    for _ in range(200):
        values = tuple(dict.fromkeys(rng.choice([rng.randint(-2**40, 2**40), rng.random() * 1e6, "v" * rng.randint(0, 9)])
                                     for _ in range(rng.randint(1, 5))))
        made = spec(parameters=(("rate", values), ("flag", (True, False))), repeat=rng.randint(1, 50))
        assert CampaignSpec.from_untrusted(json.loads(json.dumps(made.to_json())), "x") == made
        index = rng.randint(1, made.count)
        runs = tuple(run_name(made, index, attempt) for attempt in range(1, rng.randint(1, 4)))
        state = CombinationState(index, rng.choice(list(CombinationStatus)), rng.randint(0, 5), runs,
                                 rng.choice([None, "task failed: ü"]), rng.choice([None, 1.5]), rng.choice([None, 2.0]),
                                 rng.choice([None, (1234, 987654)]))
        raw = json.loads(json.dumps(state.to_json()))
        assert CombinationState.from_untrusted(raw, "x", index, run_name(made, index, 1)) == state


@pytest.mark.parametrize(("change", "why"), [
    ({"version": 2}, "version"),
    ({"name": "../etc"}, "not a campaign name"),
    ({"repeat": 0}, "repeat"),
    ({"repeat": True}, "repeat"),
    ({"parameters": {"rate": []}}, "values"),
    ({"parameters": {"rate": [1, 1]}}, "twice"),
    ({"parameters": {"rate": [{"a": 1}]}}, "is a dict"),
    ({"parameters": {"rate": [2**70]}}, "64 bits"),
    ({"parameters": {"__import__('os')": [1]}}, "identifier"),
    ({"parameters": {"a": list(range(1000)), "b": list(range(1000))}}, "combinations"),
    ({"experiment": 3}, "experiment"),
    ({"inventory": "hosts"}, "inventory"),
])
def test_a_crafted_spec_is_refused_naming_its_file(change: dict[str, object], why: str) -> None:
    raw = {**spec().to_json(), **change}
    with pytest.raises(UntrustedDataError) as error:
        CampaignSpec.from_untrusted(raw, "/home/u/campaigns/rates/campaign.json")
    assert why in str(error.value) and "campaign.json" in str(error.value)


@pytest.mark.parametrize(("change", "why"), [
    ({"index": 4}, "not the state of combination 3"),
    ({"status": "hacked"}, "status"),
    ({"attempts": -1}, "attempts"),
    ({"runs": ["victim-run"]}, "runs"),  # a run not the combination's own: the sweep would replace it
    ({"runs": ["rates-0003-1"]}, "runs"),
    ({"runs": ["rates-00031"]}, "runs"),
    ({"error": "x" * 3000}, "error"),
    ({"started": float("nan")}, "started"),
    ({"sweeper": {"pid": -1, "start_time": 1}}, "sweeper"),
])
def test_a_crafted_state_is_refused(change: dict[str, object], why: str) -> None:
    raw = {**CombinationState(3, runs=("rates-0003", "rates-0003-2")).to_json(), **change}
    with pytest.raises(UntrustedDataError) as error:
        CombinationState.from_untrusted(raw, "0003.json", 3, "rates-0003")
    assert why in str(error.value)


def test_the_store_keeps_the_spec_refuses_another_and_reads_crafted_states_as_errors(
        isolated_home: Path) -> None:
    folder = CampaignDir.named("rates")
    made = spec()
    assert folder.open(made) == made
    assert folder.open(spec(created=5.0)) == made  # the time it was made is not what it runs
    with pytest.raises(UsageError, match=r"started otherwise \(parameters: rate=10,20,50 .* -> rate=10,20 "):
        folder.open(spec(parameters=(("rate", (10, 20)), ("size", ("1M", "10M")), ("verbose", (False,)))))
    assert folder.state(made, 5) == CombinationState(5)  # no file yet: pending
    folder.save(made, CombinationState(5, CombinationStatus.DONE, 1, ("rates-0005", "rates-0005-2")))
    assert folder.state(made, 5).status is CombinationStatus.DONE
    (folder.combinations_dir / "0006.json").write_text("[1, 2]")
    with pytest.raises(UntrustedDataError):
        folder.state(made, 6)
    assert oct((folder.combinations_dir / "0005.json").stat().st_mode & 0o777) == "0o600"
    with pytest.raises(UsageError):
        CampaignDir.named("../up")


def test_a_combinations_lock_is_held_by_one_holder_at_a_time(isolated_home: Path) -> None:
    folder = CampaignDir.named("rates")
    made = folder.open(spec())
    with folder.claimed(made, 1) as first:
        assert first
        with folder.claimed(made, 1) as second, folder.claimed(made, 2) as other:
            assert not second and other  # flock: a second open file of the same lock is refused
    with folder.claimed(made, 1) as again:
        assert again


# -- confidence intervals ------------------------------------------------------------
def test_t_quantiles_match_the_tables_and_approach_the_normal() -> None:
    assert t95(1) == 12.706 and t95(4) == 2.776 and t95(30) == 2.042
    assert abs(t95(35) - 2.030) < 0.001 and abs(t95(200) - 1.972) < 0.001 and abs(t95(10**6) - 1.960) < 0.001
    quantiles = [t95(df) for df in range(1, 1000)]
    assert quantiles == sorted(quantiles, reverse=True)
    with pytest.raises(ValueError):
        t95(0)


def test_the_interval_of_a_mean_is_students() -> None:
    samples = [1.0, 2.0, 3.0, 4.0, 5.0]
    interval = mean_interval(samples)
    half = 2.776 * statistics.stdev(samples) / math.sqrt(5)
    assert interval.mean == 3.0 and interval.n == 5
    assert math.isclose(interval.low, 3.0 - half) and math.isclose(interval.high, 3.0 + half)
    assert mean_interval([7.0]) == mean_interval([7.0]) and mean_interval([7.0]).low == 7.0
    assert mean_interval([2.0, 2.0]).half_width == 0.0
    with pytest.raises(ValueError):
        mean_interval([])
