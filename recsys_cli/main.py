"""The `recsys` command line: one typer app assembled from the packages' commands.

This package sits above recsys, training and serving so that the library never imports them.
"""

from __future__ import annotations

import logging
import os
import sys

import typer

from recsys_cli import evaluate as evaluate_cmd
from recsys_cli import generate as generate_cmd
from recsys_cli import train as train_cmd
from serving.cli_keys import app as keys_app
from serving.cli_serve import serve as serve_cmd

app = typer.Typer(
    help="recsys: recommendations and customer segments for marketing automation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("evaluate")(evaluate_cmd.evaluate)
app.command("generate")(generate_cmd.generate)
app.command("train")(train_cmd.train)
app.command("serve")(serve_cmd)
app.add_typer(keys_app, name="keys")


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    """recsys: recommendations and customer segments for marketing automation."""
    if version:
        from recsys import __version__

        typer.echo(__version__)
        raise typer.Exit()


def main() -> None:
    """Console entry point: logging to stderr, user errors as one line and exit status 2."""
    from recsys.data.errors import DataValidationError

    logging.basicConfig(
        level=os.environ.get("RECSYS_LOG_LEVEL", "WARNING").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        app()
    except (DataValidationError, ValueError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
