"""The ``funbat`` command line: a thin layer over the library.

Every command parses its arguments, calls the library's public API and prints. Bad
input (a :class:`~funbat.InputError` or a usage error) is reported as one line on
stderr with exit code 2 and no traceback; files are only ever written atomically, so a
failed command writes nothing.

One module per command (:mod:`.fit`, :mod:`.predict`, :mod:`.evaluate`, :mod:`.plot`,
:mod:`.info`, :mod:`.demo`); what they share is in :mod:`._common`. JAX and
scikit-learn are imported inside the commands, so ``funbat --help`` stays fast.
"""

from __future__ import annotations

import errno
import sys  # noqa: F401  (funbat.cli.sys: what tests patch sys.stderr through)
from typing import Annotated

import typer

from funbat import InputError

from . import demo as _demo
from . import evaluate as _evaluate
from . import fit as _fit
from . import info as _info
from . import plot as _plot
from . import predict as _predict


def _click_exceptions(name: str) -> tuple[type, ...]:
    """``name`` from click and from the click that newer typers vendor as typer._click."""
    import importlib

    found = []
    for module in ("click.exceptions", "typer._click.exceptions"):
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(found)


_USAGE_ERRORS = _click_exceptions("UsageError")
_NO_ARGS = _click_exceptions("NoArgsIsHelpError")
_CLICK_ERRORS = _click_exceptions("ClickException")
_ABORT = _click_exceptions("Abort")

#: ``errno`` values of an OSError that mean a bad path given by the user (exit 2, as
#: for other bad input); any other OSError (a full disk) exits 1, in one line too.
_PATH_ERRORS = {getattr(errno, n) for n in ("ENAMETOOLONG", "ENOENT", "ENOTDIR", "EISDIR",
                                             "EACCES", "EPERM", "EROFS", "ELOOP", "EINVAL")
                if hasattr(errno, n)}  # fmt: skip

__all__ = ["app", "main"]

app = typer.Typer(
    name="funbat",
    help=(
        "Functional Bayesian Tucker decomposition of continuous-indexed tensor data.\n\n"
        "A table with one column per mode (numbers or ISO dates) and a target column is a "
        "tensor observed at continuous coordinates: fit it, predict anywhere with "
        "calibrated uncertainty, evaluate, and plot the latent functions."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# in the order ``funbat --help`` lists them
for _command in (
    _fit.fit,
    _predict.predict,
    _evaluate.evaluate,
    _plot.plot,
    _info.info,
    _demo.demo,
):
    app.command()(_command)
del _command


def _version_callback(value: bool):
    if value:
        from funbat import __version__

        typer.echo(f"funbat {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Show the version."
        ),
    ] = False,
):
    """Functional Bayesian Tucker decomposition of continuous-indexed tensor data."""


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    typer.echo(f"funbat: warning: {message}", err=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, turning bad input into one line on stderr and exit 2."""
    import warnings

    command = typer.main.get_command(app)
    try:
        with warnings.catch_warnings():
            # a warning is one plain line, like an error, not Python's file:line report
            warnings.showwarning = _show_warning
            rv = command.main(args=argv, prog_name="funbat", standalone_mode=False)
    except InputError as err:
        typer.echo(f"funbat: error: {err}", err=True)
        return 2
    except _NO_ARGS as err:
        typer.echo(err.format_message(), err=True)
        return 2
    except _USAGE_ERRORS as err:
        ctx = err.ctx
        hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        typer.echo(f"funbat: error: {err.format_message()}{hint}", err=True)
        return 2
    except _CLICK_ERRORS as err:
        typer.echo(f"funbat: error: {err.format_message()}", err=True)
        return err.exit_code
    except (*_ABORT, KeyboardInterrupt):
        typer.echo("funbat: interrupted; nothing was written", err=True)
        return 130
    except FloatingPointError as err:
        typer.echo(f"funbat: error: {err}", err=True)
        return 1
    except OSError as err:  # a path the system refuses (too long, no permission...)
        name = err.filename if err.filename is not None else ""
        shown = f" {str(name)[:60]!r}{'...' if len(str(name)) > 60 else ''}" if name else ""
        typer.echo(f"funbat: error: cannot use{shown}: {err.strerror or err}", err=True)
        return 2 if err.errno in _PATH_ERRORS else 1
    return rv if isinstance(rv, int) else 0
