"""Bad input a person must fix (a dump that is cut, not a dump, or much smaller than the tables)
fails its step as a `dg.Failure`: the project's message as the description, the offending dump
in the metadata, and no chain of causes under it (DuckDB's own wording of the same problem).

Dagster still prints a stack trace twice and ends a failed `dg launch` with "Error: Run …
resulted in failure.", which names no reason; so a command typed in a shell also prints the
message once more as its very last line, where a person reads first.
"""

import atexit
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

_last_words: list[str] = []

SHELL_COMMANDS = {("dg", "launch"), ("dagster", "job"), ("dagster", "asset")}
"""Commands that run the steps in their own process: `dg launch`, `dagster job execute`,
`dagster asset materialize`."""


def typed_in_a_shell(argv: list[str] | None = None) -> bool:
    """Whether this process is a Dagster command that runs its steps itself (not a run worker of
    `dg dev`, nor a test): only there does a line printed at exit follow Dagster's last line."""
    args = sys.argv if argv is None else argv
    return len(args) > 1 and (Path(args[0]).name, args[1]) in SHELL_COMMANDS


def refused(step: str, error: Exception, hint: str = "", **metadata: object) -> dg.Failure:
    """The failure of `step` on bad input `error` (and `hint`, what to do if the input is right
    after all), said again at exit in a typed command."""
    message = f"{error}. {hint}" if hint else str(error)
    if typed_in_a_shell():
        if not _last_words:
            atexit.register(_say_last_words)
        _last_words.append(f"{step} failed: {message}")
    return dg.Failure(
        description=message,
        metadata={"error": type(error).__name__, **metadata},
        allow_retries=False,
    )


@contextmanager
def refusing(
    step: str,
    *errors: type[Exception],
    hint: Callable[[Exception], str] = lambda _error: "",
    **metadata: object,
) -> Iterator[None]:
    """Turn `errors` raised in the block into `refused(step, …)`, without their causes; `hint`
    gives, for an error, what to do if the input is right after all."""
    try:
        yield
    except errors as error:
        raise refused(step, error, hint(error), **metadata) from None


def _say_last_words() -> None:
    for line in _last_words:
        print(line, file=sys.stderr, flush=True)
