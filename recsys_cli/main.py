"""The `recsys` command line: one typer app assembled from the packages' commands.

This package sits above recsys, training and serving so that the library never imports them.
"""

from __future__ import annotations

import sys

import typer

from recsys.errors import InvalidInputError, NotFoundError, RecsysError
from recsys.logs import configure_logging
from recsys.settings import get_settings
from recsys_cli import consume as consume_cmd
from recsys_cli import evaluate as evaluate_cmd
from recsys_cli import generate as generate_cmd
from recsys_cli import imports as import_cmd
from recsys_cli import retention as retention_cmd
from recsys_cli import segments as segments_cmd
from recsys_cli import train as train_cmd
from recsys_cli import worker as worker_cmd
from serving.cli_keys import app as keys_app
from serving.cli_serve import serve as serve_cmd

app = typer.Typer(
    help="recsys: recommendations and customer segments for marketing automation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # typer's rich help prints `<bool>` after every flag
)
app.command("evaluate")(evaluate_cmd.evaluate)
app.command("generate")(generate_cmd.generate)
app.command("import")(import_cmd.import_)
app.command("consume")(consume_cmd.consume)
app.command("train")(train_cmd.train)
app.command("serve")(serve_cmd)
app.command("worker")(worker_cmd.worker)
app.add_typer(keys_app, name="keys")
app.add_typer(segments_cmd.app, name="segments")
app.add_typer(retention_cmd.app, name="retention")


def _print_version(value: bool) -> None:
    if value:
        from recsys import __version__

        typer.echo(f"recsys {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,  # handled before click asks for the missing command
        help="Print the version and exit.",
    ),
) -> None:
    """recsys: recommendations and customer segments for marketing automation."""


def exit_code(exc: RecsysError) -> int:
    """Exit status of a recsys error: 2 for input the user can fix, 1 for everything else."""
    return 2 if isinstance(exc, InvalidInputError | NotFoundError) else 1


def main() -> None:
    """Console entry point: logging to stderr; recsys errors as one line (exit 2 for bad input,
    1 for an unavailable dependency or a conflict); any other exception is a bug and crashes
    with its traceback (exit 1)."""
    try:
        settings = get_settings()
    except InvalidInputError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    configure_logging(settings.log_level or "WARNING", settings.log_format)
    try:
        app()
    except RecsysError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exit_code(exc))
    except FileNotFoundError as exc:  # a path the user gave
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
