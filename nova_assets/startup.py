"""Run at the start of every Python process of the project's environment (through
nova_assets_startup.pth, installed beside the packages): Ctrl-C and SIGTERM stop `dg dev` and
everything it starts, however it was started.

A command a shell script starts in the background (`uv run dg dev &`, or under a job runner
that does the same) inherits SIGINT ignored, and Python keeps ignoring it. Dagster then gives
SIGTERM the disposition of SIGINT (dagster._utils.interrupts.setup_interrupt_handlers), so
`dg dev`, its webserver, daemon and code servers ignored both, and lived on after SIGINT or
SIGTERM to their process group until killed. Giving SIGINT back its default (KeyboardInterrupt)
in each of them makes both signals stop them again, as in a terminal.
"""

import signal
import threading


def restore_interrupts() -> bool:
    """Undo an inherited "ignore SIGINT"; whether there was one to undo."""
    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        return False
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return True


restore_interrupts()
