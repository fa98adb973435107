"""Bad command-line input as one line that names the option to fix, shared by the parts' CLIs.

Library code reports a bad value as ``ValueError("field: what is wrong")`` or as a pydantic
``ValidationError`` on a config field; ``bad_option`` turns either into a ``typer.BadParameter`` whose
hint is the option behind that field: ``--field-name`` unless ``options`` maps it to another one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

import typer

T = TypeVar("T")


def field_and_message(e: Exception) -> tuple[str | None, str]:
    """The field a ``ValidationError`` (its first error) or a ``"field: ..."`` ``ValueError`` is about."""
    from pydantic import ValidationError

    if isinstance(e, ValidationError):
        err = e.errors()[0]
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] != "value_error" and isinstance(err.get("input"), str | int | float):
            msg += f", got {err['input']!r}"  # pydantic's own messages do not repeat the value
        if err.get("loc"):
            return str(err["loc"][0]), msg
        e = ValueError(msg)
    text = str(e)
    head, sep, _ = text.partition(":")
    return (head, text) if sep and head.isidentifier() else (None, text)


def bad_option(e: Exception, *, default: str, options: Mapping[str, str] | None = None) -> typer.BadParameter:
    """A ``BadParameter`` for ``e``, naming the option of its field (``default`` when it names none)."""
    field, msg = field_and_message(e)
    hint = default if field is None else (options or {}).get(field) or "--" + field.replace("_", "-")
    return typer.BadParameter(msg, param_hint=hint)


def positive_list(text: str, convert: Callable[[str], T], option: str) -> list[T]:
    """A comma-separated list of positive numbers (``convert``: int or float) given to ``option``."""
    kind = "integers" if convert is int else "numbers"
    try:
        values = [convert(v) for v in text.split(",") if v.strip()]
    except ValueError:
        msg = f"expected comma-separated {kind}, got {text!r}"
        raise typer.BadParameter(msg, param_hint=option) from None
    if not values or any(not v > 0 for v in values):  # type: ignore[operator]
        raise typer.BadParameter(f"expected positive {kind}, got {text!r}", param_hint=option)
    return values
