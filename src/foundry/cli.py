"""The `foundry` command: one typer group per part.

Each part owns its sub-commands in `foundry/<part>/cli.py`; those modules import heavy
dependencies (torch, fastapi) inside the commands, so `foundry --help` stays fast.
"""

import typer

from foundry import __version__
from foundry.mimo.cli import app as mimo_app
from foundry.pde.cli import app as pde_app
from foundry.serve.cli import app as serve_app
from foundry.sim.cli import app as sim_app

app = typer.Typer(
    name="foundry",
    help="foundry: LLM serving, a serving simulator, RL post-training, PDEformer and WL-MIMO precoding.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(mimo_app, name="mimo")
app.add_typer(pde_app, name="pde")
app.add_typer(serve_app, name="serve")
app.add_typer(sim_app, name="sim")


@app.command()
def version() -> None:
    """Print the foundry version."""
    typer.echo(__version__)


if __name__ == "__main__":
    app()
