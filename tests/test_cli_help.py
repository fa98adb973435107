"""`--help` of every `foundry` command at 80 columns: every option's full name, every help text whole.

The command tree is walked from the top-level app, so a new command or option is covered without
editing this file.
"""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from foundry.cli import app

runner = CliRunner()


def _commands(cmd=None, path: tuple[str, ...] = ()):
    cmd = typer.main.get_command(app) if cmd is None else cmd
    yield path, cmd
    for name, sub in sorted((getattr(cmd, "commands", None) or {}).items()):
        yield from _commands(sub, (*path, name))


COMMANDS = dict(_commands())


def _squeeze(text: str) -> str:
    return "".join(text.split())  # wrapping moves words between lines; compare without whitespace


@pytest.mark.parametrize("path", list(COMMANDS), ids=lambda p: " ".join(p) or "foundry")
def test_help_at_80_columns_shows_every_option_and_help_text_whole(path: tuple[str, ...]) -> None:
    r = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert r.exit_code == 0, r.output
    out = r.output
    params = [p for p in COMMANDS[path].params if not getattr(p, "hidden", False)]
    for param in params:
        for name in (*param.opts, *param.secondary_opts):
            if name.startswith("-"):
                assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", out), f"{name} cut in\n{out}"
        if getattr(param, "help", None):  # nothing eaten, e.g. "[default]" taken for markup
            assert _squeeze(param.help) in _squeeze(out), f"help of {param.name} not shown whole\n{out}"
    assert not re.search(r"\s\.(\s|$)", out), f"a stray ' .' in\n{out}"
    assert max(map(len, out.splitlines()), default=0) <= 80, out
