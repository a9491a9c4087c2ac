"""Starting (or continuing) a campaign: ``unicorn-ansible sweep`` and ``unicorn_ansible.sweep``.

The experiment is a file (as ``run`` takes it) or, from Python, an experiment function or an
Experiment. Its parameters' values are typed by their defaults (parameters.py): every value is
checked before anything runs, by loading the file once with the first value of each. The spec
made of them (records.CampaignSpec) opens the campaign: made if new, compared with the kept
one if not, so the same command continues a campaign and another is refused.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..compat.netunicorn import as_experiment, for_netunicorn
from ..engine.lifecycle import load_experiment_file
from ..errors import ExperimentError, UsageError
from ..inventory import Inventory, load_inventory
from ..model.experiment import Experiment
from .parameters import ExperimentArguments, Parameter, Value, declared_parameters, typed
from .plan import ORDERS, Combination, combinations, ordered, run_name
from .records import MAX_COMBINATIONS, MAX_REPEAT, CampaignSpec
from .store import CampaignDir, check_campaign_name
from .sweep import Build, Sweeper, SweepSettings, SweepSummary, Watch
from .table import COLUMNS, Campaign

if TYPE_CHECKING:  # pragma: no cover
    from typing_extensions import Unpack

    from ..engine.lifecycle import RunOptions

#: what a sweep is given as an experiment
ExperimentSource = str | Path | Callable[..., object] | Experiment


@dataclass(frozen=True)
class Planned:
    """A sweep about to start: its campaign's spec, how to build each combination's experiment,
    and the seed its order is shuffled by."""

    spec: CampaignSpec
    build: Build
    seed: int | None


def _values_given(values: object) -> list[object]:
    """A parameter's values as given: a list or tuple of them, or one value."""
    return list(values) if isinstance(values, (list, tuple)) else [values]


def _declared_of(experiment: ExperimentSource, given: Mapping[str, list[object]], inventory: Inventory,
                 source: str, option: str) -> tuple[dict[str, Parameter], Build]:
    """The experiment's parameters, and how to build it for one combination's values. A file is
    loaded once here, with the first value of each parameter: what it raises, it raises now."""
    if isinstance(experiment, (str, Path)):
        path = str(experiment)
        probe = ExperimentArguments({name: values[0] for name, values in given.items()}, source, option)
        load_experiment_file(path, inventory.nodes, probe)

        def from_file(values: dict[str, Value]) -> Experiment:
            return load_experiment_file(path, inventory.nodes, ExperimentArguments(values, source))

        return probe.declared, from_file
    value = as_experiment(experiment)
    if isinstance(value, Experiment):
        ExperimentArguments({name: values[0] for name, values in given.items()}, source, option)(value)
        return {}, lambda values: value
    if not callable(value):
        raise ExperimentError(f"{source} is a {type(value).__name__}; give an experiment file, an Experiment "
                              "or a function that takes the node pool and returns one")
    function: Callable[..., object] = value
    declared, unsettable = declared_parameters(function)
    typed(declared, {name: values[0] for name, values in given.items()}, source, option, unsettable)
    return declared, lambda values: _called(function, inventory, values, source)


def _called(function: Callable[..., object], inventory: Inventory, values: dict[str, Value], source: str) -> Experiment:
    try:
        built = as_experiment(function(for_netunicorn(inventory.nodes()), **values))
    except ExperimentError:
        raise
    except Exception as exc:
        raise ExperimentError(f"{source}(nodes) raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(built, Experiment):
        raise ExperimentError(f"{source}(nodes) returned a {type(built).__name__}, not an Experiment")
    return built


def _grid(declared: Mapping[str, Parameter], given: Mapping[str, list[object]], source: str,
          option: str) -> tuple[tuple[str, tuple[Value, ...]], ...]:
    """Every parameter's values, typed, in the experiment's order (one not given: its default)."""
    grid = []
    for name, parameter in declared.items():
        if name in COLUMNS:
            raise UsageError(f"{source}: parameter {name} is named like a column of the campaign's table "
                             f"({', '.join(COLUMNS)}); rename it")
        values = [typed(declared, {name: value}, source, option)[name] for value in given.get(name, [])]
        if len({(type(v), v) for v in values}) != len(values):
            raise UsageError(f"{option} {name}: two of its values are the same {parameter.kind.__name__}; "
                             "give each value once")
        grid.append((name, tuple(values) if values else (parameter.default,)))
    return tuple(grid)


def _identity(experiment: ExperimentSource) -> str:
    """How the spec names the experiment: its file's absolute path, or the function's module and name."""
    if isinstance(experiment, (str, Path)):
        return str(Path(experiment).resolve())
    return f"python:{getattr(experiment, '__module__', '?')}.{getattr(experiment, '__qualname__', type(experiment).__name__)}"


def plan_sweep(experiment: ExperimentSource, parameters: Mapping[str, object], name: str, repeat: int,
               inventory: Inventory, order: str = "random", seed: int | None = None,
               option: str = "-p") -> Planned:
    """Check a sweep's arguments and make its campaign's spec (nothing is written)."""
    check_campaign_name(name)
    if not 1 <= repeat <= MAX_REPEAT:
        raise UsageError(f"--repeat {repeat}: give 1 to {MAX_REPEAT}")
    if order not in ORDERS:
        raise UsageError(f"--order {order}: give one of {', '.join(ORDERS)}")
    source = str(experiment) if isinstance(experiment, (str, Path)) else getattr(experiment, "__name__", "experiment")
    given = {key: _values_given(values) for key, values in parameters.items()}
    declared, build = _declared_of(experiment, given, inventory, source, option)
    grid = _grid(declared, given, source, option)
    sources = tuple(str(Path(s).resolve()) if Path(s).exists() else s for s in inventory.sources)
    spec = CampaignSpec(name=name, experiment=_identity(experiment), parameters=grid, repeat=repeat,
                        inventory=sources, created=time.time())
    if spec.count > MAX_COMBINATIONS:
        raise UsageError(f"the sweep has {spec.count} combinations (repeats included); at most {MAX_COMBINATIONS}")
    if order == "random" and seed is None:
        seed = random.SystemRandom().randrange(2**31)
    return Planned(spec, build, seed)


def left_to_run(planned: Planned, order: str, retries: int) -> list[tuple[str, Combination]]:
    """What a sweep would run, in its order: each combination left and its next run's name."""
    folder = CampaignDir.named(planned.spec.name)
    spec = planned.spec
    if folder.exists():
        kept = folder.spec()
        differences = kept.differences(spec)
        if differences:
            raise UsageError(f"campaign {spec.name} was started otherwise ({'; '.join(differences)}); "
                             "continue it with the command that started it, or choose another --name")
        spec = kept
        states = folder.states(spec)
    else:
        states = {}
    left = []
    for combination in ordered(combinations(spec), order, planned.seed):
        state = states.get(combination.index)
        if state is not None and (state.status.value == "done" or state.attempts > retries):
            continue
        attempt = len(state.runs) + 1 if state is not None else 1
        left.append((run_name(spec, combination.index, attempt), combination))
    return left


def run_sweep(planned: Planned, inventory: Inventory, settings: SweepSettings, watch: Watch | None = None,
              say: Callable[[str], None] | None = None) -> tuple[Campaign, SweepSummary]:
    """Open the planned campaign (made, or checked against the kept one) and run what is left."""
    folder = CampaignDir.named(planned.spec.name)
    spec = folder.open(planned.spec)
    sweeper = Sweeper(folder, spec, planned.build, inventory, settings, watch, say)
    return Campaign(folder, spec), sweeper.run()


def sweep(experiment: ExperimentSource, parameters: Mapping[str, object] | None = None, *, name: str,
          repeat: int = 1, order: str = "random", seed: int | None = None, retries: int = 1,
          inventory: Sequence[str] | Inventory | None = None, **options: Unpack[RunOptions]) -> Campaign:
    """Run every combination of ``parameters`` × ``repeat`` as runs of the campaign ``name``;
    return the campaign (``.frame()``, ``.rows()``, ``.progress()``, ``.report()``).

    ``experiment``: an experiment file, a function ``experiment(nodes, rate=10, ...)`` or an
    Experiment. ``parameters``: each parameter's values (a list, or one value), typed by the
    parameter's default. ``order``: ``"random"`` (shuffled by ``seed``) or ``"grid"``.
    ``retries``: how many more times a combination whose run failed is tried. ``inventory``:
    its sources (default: the local machine). ``options``: CompileOptions fields (forks,
    task_timeout, ...). Calling it again with the same arguments goes on where the campaign
    stopped; several processes can share one campaign."""
    from ..compiler.settings import CompileOptions

    loaded = inventory if isinstance(inventory, Inventory) else load_inventory(inventory)
    planned = plan_sweep(experiment, parameters or {}, name, repeat, loaded, order, seed, option="parameters")
    if retries < 0:
        raise UsageError(f"retries={retries}: give 0 or more")
    settings = SweepSettings(order=order, seed=planned.seed, retries=retries, options=CompileOptions(**options))
    campaign, _ = run_sweep(planned, loaded, settings)
    return campaign
