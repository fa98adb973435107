"""The `foundry` command: one typer group per part.

Each part owns its sub-commands in `foundry/<part>/cli.py`; those modules import heavy
dependencies (torch, fastapi) inside the commands, so `foundry --help` stays fast.
"""

import typer

from foundry import __version__
from foundry.mimo.cli import app as mimo_app
from foundry.pde.cli import app as pde_app
from foundry.rl.cli import app as rl_app
from foundry.serve.cli import app as serve_app
from foundry.sim.cli import app as sim_app

# Help and errors are click's plain text (rich_markup_mode=None; it applies to every sub-command). Rich's
# help table shrinks the option-name column together with the help column once the terminal is narrow
# (80 columns cut `--mlfq-starvation-threshold`), and its markup eats help text in brackets ("[auto]").
app = typer.Typer(
    name="foundry",
    help="foundry: LLM serving, a serving simulator, PDEformer and WL-MIMO precoding (RL post-training: "
    "planned).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
app.add_typer(mimo_app, name="mimo")
app.add_typer(pde_app, name="pde")
app.add_typer(rl_app, name="rl")
app.add_typer(serve_app, name="serve")
app.add_typer(sim_app, name="sim")


@app.command()
def version() -> None:
    """Print the foundry version."""
    typer.echo(__version__)


if __name__ == "__main__":
    app()
