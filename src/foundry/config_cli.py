"""Nested pydantic configs as flat names, and those names as `--options` of a typer command.

A config may nest sections (a field whose type is a pydantic model). Each leaf has one *flat name*:
its section's ``flat_prefix`` (a class attribute, "" by default) followed by the field's name, e.g.
``EngineConfig.scheduler.mlfq.base_quantum`` is ``mlfq_base_quantum``. Flat names are what a
command line and a keyword call use; the nested object is what code reads. This module is the one
place that maps between them:

- ``flat_fields(Model)``: flat name -> (path, FieldInfo), checked unique;
- ``nest(Model, flat)``: flat values -> the nested dict ``Model`` validates;
- ``replace(config, **flat)``: a validated copy with some fields changed;
- ``config_options(Model)``: a decorator giving a typer command one ``--flat-name`` option per leaf
  (type, help and default taken from the field), building ``Model`` before the command runs, and
  turning a ``ValidationError`` into a one-line error that names the option to fix.

Options default to None, meaning "the config's default": every default lives in the config.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from foundry.cli_errors import field_and_message

M = TypeVar("M", bound=BaseModel)
Command = Callable[..., Any]


@dataclass(frozen=True)
class FlatField:
    name: str  # e.g. "mlfq_base_quantum"
    path: tuple[str, ...]  # attribute path from the top config, e.g. ("scheduler", "mlfq", "base_quantum")
    info: FieldInfo

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")


def _section(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


@cache
def flat_fields(model: type[BaseModel]) -> dict[str, FlatField]:
    """Every leaf field of `model` and its sections, by flat name (unique, or TypeError at first use)."""
    out: dict[str, FlatField] = {}

    def walk(m: type[BaseModel], path: tuple[str, ...], prefix: str) -> None:
        for name, info in m.model_fields.items():
            sub = _section(info.annotation)
            if sub is not None:
                walk(sub, (*path, name), prefix + getattr(sub, "flat_prefix", ""))
                continue
            flat = prefix + name
            if flat in out:
                where = ".".join(out[flat].path), ".".join((*path, name))
                raise TypeError(f"{model.__name__}: flat name {flat!r} is both {where[0]} and {where[1]}")
            out[flat] = FlatField(flat, (*path, name), info)

    walk(model, (), getattr(model, "flat_prefix", ""))
    return out


def nest(model: type[BaseModel], flat: Mapping[str, Any]) -> dict[str, Any]:
    """The nested dict for `model` from flat names. A name that is also one of `model`'s sections takes a
    dict or model as the whole section, anything else as its leaf (`device="cpu"` is the device's name,
    `device={...}` the device section). An unknown name is kept, for validation to report."""
    fields = flat_fields(model)
    out: dict[str, Any] = {}
    for key, value in flat.items():
        f = fields.get(key)
        whole = key in model.model_fields and (f is None or isinstance(value, dict | BaseModel))
        if f is None or len(f.path) == 1 or whole:
            out[key] = dict(value) if isinstance(value, dict) else value  # (a copy: leaves may join it)
            continue
        node = out
        for part in f.path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"{key}: give {f.path[0]!r} either as a whole or field by field, not both")
        node[f.path[-1]] = value
    return out


def with_flat_names(cls: type[M], data: Any) -> Any:
    """For a ``model_validator(mode="before")``: accept flat names beside nested sections."""
    return nest(cls, data) if isinstance(data, dict) else data


def replace(config: M, **flat: Any) -> M:
    """A validated copy of `config` with the fields named (flat names) changed; `config` is untouched."""

    def merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
        out = dict(base)
        for k, v in changes.items():
            out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        return out

    cls = type(config)
    return cls.model_validate(merge(config.model_dump(), nest(cls, flat)))


def option_for(loc: Iterable[Any], model: type[BaseModel]) -> FlatField | None:
    """The flat field of a validation error's location (its longest leaf prefix), if any."""
    path = tuple(str(p) for p in loc)
    by_path = {f.path: f for f in flat_fields(model).values()}
    for n in range(len(path), 0, -1):
        if path[:n] in by_path:
            return by_path[path[:n]]
    return None


def bad_config(e: Exception, model: type[BaseModel], *, default: str,
               options: Mapping[str, str] | None = None) -> Any:
    """A ``typer.BadParameter`` for an error building `model`, naming the option to fix: the field's
    `--flat-name`, or `options[flat name]` where a command spells it otherwise."""
    import typer
    from pydantic import ValidationError

    field, msg = field_and_message(e)
    loc = e.errors()[0].get("loc") if isinstance(e, ValidationError) else None
    f = option_for(loc, model) if loc else flat_fields(model).get(field or "")
    if f is not None:
        hint = (options or {}).get(f.name, f.option)
    else:  # a "field: ..." message about something that is not one of the config's fields
        hint = None if loc or field is None else "--" + field.replace("_", "-")
    return typer.BadParameter(msg, param_hint=hint or default)


# ---- typer options ---------------------------------------------------------------------------------
_PLAIN = (bool, int, float, str, Path)


def _cli_type(info: FieldInfo) -> Any:
    """The command-line type of a field: a plain type or a Literal (typer checks and lists its choices).
    Optional is stripped when None is the default (an option not given); otherwise None has a meaning
    the field's own validator reads from a word (e.g. 'auto'), so the option takes text."""
    annotation = info.annotation
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        if info.get_default(call_default_factory=True) is not None:
            return str
        annotation = args[0]
    return annotation if annotation in _PLAIN or get_origin(annotation) is Literal else str


def _help(f: FlatField, text: str | None) -> str:
    text = (text or f.info.description or "").rstrip(".")
    if text[:1].isascii():  # (not "σ_g" -> "Σ_g")
        text = text[:1].upper() + text[1:]
    if f.info.is_required():
        return f"{text}. [required]"
    default = f.info.get_default(call_default_factory=True)
    if isinstance(default, list | tuple):
        default = ",".join(map(str, default))
    return f"{text}. [default: {default}]" if default is not None else text + "."


def _parameter(f: FlatField, text: str | None = None) -> inspect.Parameter:
    import typer

    kind = _cli_type(f.info)
    names = f"{f.option}/--no-{f.option[2:]}" if kind is bool else f.option  # a switch both ways
    opt = typer.Option(names, help=_help(f, text), show_default=False)
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=None,
                             annotation=Annotated[kind | None, opt])


def config_options(model: type[M], *, param: str = "config", only: Iterable[str] | None = None,
                   exclude: Iterable[str] = (), fixed: Mapping[str, Any] | None = None,
                   passthrough: Iterable[str] = (), helps: Mapping[str, str] | None = None,
                   build: bool = True, default_hint: str = "") -> Callable[[Command], Command]:
    """Decorate a typer command: add an option per flat field of `model` (those in `only`, minus
    `exclude` and `fixed`), build `model` from what was given plus `fixed`, and pass it as `param`.
    Names in `passthrough` also reach the command as given (None when not); `helps` replaces a field's
    description. A bad value exits with a one-line error naming its option (`default_hint` if none).
    With `build=False` the command gets the given values by flat name instead, to merge with other
    sources (a config file) and validate itself (`bad_config` names the option)."""
    keep = None if only is None else set(only)
    fixed, helps, passthrough = dict(fixed or {}), dict(helps or {}), set(passthrough)
    fields = [f for name, f in flat_fields(model).items()
              if (keep is None or name in keep) and name not in exclude and name not in fixed]

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(fn)
        own = [p for p in sig.parameters.values() if p.name != param and p.name not in passthrough]
        taken = {p.name for p in own} & {f.name for f in fields}
        if taken:
            raise TypeError(f"{fn.__name__}: parameters {sorted(taken)} clash with {model.__name__} options")

        @functools.wraps(fn)
        def command(**kwargs: Any) -> Any:
            values = {f.name: kwargs.pop(f.name) for f in fields}
            given = {name: v for name, v in values.items() if v is not None}
            kwargs.update({name: values[name] for name in passthrough})
            if not build:
                return fn(**kwargs, **{param: {**given, **fixed}})
            try:
                config = model(**nest(model, {**given, **fixed}))
            except ValueError as e:  # pydantic's ValidationError is a ValueError
                raise bad_config(e, model, default=default_hint) from None
            return fn(**kwargs, **{param: config})

        own_hints = typing.get_type_hints(fn, include_extras=True)
        params = [p.replace(annotation=own_hints.get(p.name, p.annotation)) for p in own]
        options = [_parameter(f, helps.get(f.name)) for f in fields]
        command.__signature__ = sig.replace(parameters=[*params, *options])  # type: ignore[attr-defined]
        command.__annotations__ = {}  # typer reads the signature's (resolved) annotations
        return command

    return decorate
