"""foundry.config_cli: nested configs, their flat names, and the typer options made from them."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import pytest
import typer
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from typer.testing import CliRunner

from foundry.cli import app as foundry_app
from foundry.config_cli import config_options, flat_fields, nest, replace, with_flat_names
from foundry.serve.config import EngineConfig, SchedulerConfig
from foundry.serve.policies import POLICIES

runner = CliRunner()


class Inner(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    flat_prefix: ClassVar[str] = "in_"
    rate: float = Field(1.5, gt=0, description="a rate")
    mode: Literal["a", "b"] = Field("a", description="a mode")


class Outer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field("x", description="a name")
    count: int | None = Field(None, ge=1, description="a count (unset: none)")
    inner: Inner = Field(default_factory=Inner)

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, data: Any) -> Any:
        return with_flat_names(cls, data)


def test_flat_names_map_to_nested_paths_and_back():
    fields = flat_fields(Outer)
    assert {k: f.path for k, f in fields.items()} == {
        "name": ("name",), "count": ("count",), "in_rate": ("inner", "rate"), "in_mode": ("inner", "mode")}
    assert nest(Outer, {"in_rate": 2.0, "name": "y"}) == {"inner": {"rate": 2.0}, "name": "y"}
    assert Outer(in_rate=2.0) == Outer(inner={"rate": 2.0}) == Outer(inner=Inner(rate=2.0))
    with pytest.raises(ValidationError, match="inner.rate"):
        Outer(in_rate=-1)
    with pytest.raises(ValidationError, match="bogus"):  # an unknown name is reported, not dropped
        Outer(bogus=1)


def test_replace_is_a_validated_copy():
    a = Outer(in_mode="b")
    b = replace(a, in_rate=3.0, count=2)
    assert (b.inner.rate, b.inner.mode, b.count) == (3.0, "b", 2)
    assert a == Outer(in_mode="b")  # untouched
    with pytest.raises(ValidationError):
        replace(a, count=0)


def test_engine_config_flat_and_nested_are_the_same_config():
    flat = EngineConfig(max_num_seqs=8, mlfq_memory_mode="recompute", preemption_mode="swap", block_size=8,
                        device="cpu", dtype="float16")
    nested = EngineConfig(scheduler={"max_num_seqs": 8, "mlfq": {"memory_mode": "recompute"},
                                     "vllm": {"preemption_mode": "swap"}},
                          cache={"block_size": 8}, device={"device": "cpu", "dtype": "float16"})
    assert flat == nested
    assert flat.scheduler.max_num_seqs == 8 and flat.device.dtype == "float16"
    with pytest.raises(ValidationError):  # frozen: built once, never mutated
        flat.seed = 3  # type: ignore[misc]


def test_every_registered_option_group_is_a_scheduler_section_and_a_cli_option():
    """Registering a policy with an option group is what puts its options in the config and the CLIs."""
    groups = {spec.options for spec in POLICIES.values() if spec.options}
    assert groups
    serve_help = runner.invoke(foundry_app, ["serve", "--help"], env={"COLUMNS": "300"}).output
    sim_help = runner.invoke(foundry_app, ["sim", "serve", "--help"], env={"COLUMNS": "300"}).output
    for name, model in groups:
        assert SchedulerConfig.model_fields[name].annotation is model
        for field in model.model_fields:
            option = "--" + (getattr(model, "flat_prefix", "") + field).replace("_", "-")
            assert option in serve_help and option in sim_help, option
    group, _ = POLICIES["sj-mlfq"].options  # sj-mlfq reads its options from the mlfq section
    assert getattr(SchedulerConfig(policy="sj-mlfq"), group) == SchedulerConfig().mlfq


def test_one_default_per_field_engine_and_simulator():
    """The simulator's scheduler options are the engine's: same defaults (they drifted: 512 vs 2048)."""
    assert EngineConfig().scheduler == SchedulerConfig()
    from foundry.sim import make_policy, resolve_deployment

    policy = make_policy("vllm", resolve_deployment("opt-13b-a100"))
    assert (policy.max_num_seqs, policy.max_num_batched_tokens) == (16, 2048)


def _toy_app(**kwargs: Any) -> typer.Typer:
    app = typer.Typer(rich_markup_mode=None)  # plain errors, as the foundry command's
    seen: dict[str, Any] = {}

    @app.command()
    @config_options(Outer, default_hint="--name", **kwargs)
    def run(config: Any, verbose: bool = False) -> None:
        seen["config"], seen["verbose"] = config, verbose

    app.seen = seen  # type: ignore[attr-defined]
    return app


def test_options_take_type_choices_and_default_from_the_field():
    app = _toy_app()
    r = runner.invoke(app, ["--in-rate", "2.5", "--in-mode", "b", "--verbose"])
    assert r.exit_code == 0, r.output
    assert app.seen == {"config": Outer(in_rate=2.5, in_mode="b"), "verbose": True}  # type: ignore[attr-defined]
    runner.invoke(app, [])
    assert app.seen["config"] == Outer()  # type: ignore[attr-defined]  # unset = the config's default
    help_text = runner.invoke(app, ["--help"], env={"COLUMNS": "200"}).output
    assert "A rate. [default: 1.5]" in help_text and "<a|b>" in help_text


@pytest.mark.parametrize(("args", "option", "words"), [
    (["--in-rate", "-1"], "--in-rate", "greater than 0, got -1"),  # pydantic's, with the value
    (["--count", "0"], "--count", "greater than or equal to 1"),
    (["--in-mode", "c"], "--in-mode", "'c'"),  # typer's choice check
    (["--in-rate", "fast"], "--in-rate", "valid number"),  # typer's type check
])
def test_a_bad_value_is_one_line_naming_its_option(args, option, words):
    r = runner.invoke(_toy_app(), args)
    assert r.exit_code == 2 and "Traceback" not in r.output
    error = [line for line in r.output.splitlines() if "Error" in line]
    assert len(error) == 1 and option in error[0] and words in error[0], r.output


def test_fixed_excluded_passthrough_and_unbuilt():
    app = _toy_app(fixed={"name": "fixed"}, exclude=("count",))
    help_text = runner.invoke(app, ["--help"]).output
    assert "--name" not in help_text and "--count" not in help_text
    runner.invoke(app, ["--in-rate", "3"])
    assert app.seen["config"] == Outer(name="fixed", in_rate=3.0)  # type: ignore[attr-defined]

    raw = typer.Typer(rich_markup_mode=None)
    got: dict[str, Any] = {}

    @raw.command()
    @config_options(Outer, param="given", build=False, passthrough=("name",))
    def cmd(given: dict, name: str | None = None) -> None:
        got.update(given=given, name=name)

    assert runner.invoke(raw, ["--count", "0", "--name", "n"]).exit_code == 0  # validated later, by cmd
    assert got == {"given": {"count": 0, "name": "n"}, "name": "n"}


def test_nested_errors_name_the_flat_option_on_the_real_clis():
    for args in (["sim", "serve", "--mlfq-starvation-threshold", "-1"],
                 ["sim", "sweep", "--mlfq-starvation-threshold", "-1"],
                 ["serve", "bench", "--in-process", "--mlfq-starvation-threshold", "-1"]):
        r = runner.invoke(foundry_app, args, env={"COLUMNS": "300"})
        assert r.exit_code == 2, r.output
        assert "Invalid value for --mlfq-starvation-threshold: Input should be greater than or equal to 0" \
            in r.output
