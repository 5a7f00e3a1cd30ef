"""Where model fits run: this machine's cores (joblib worker processes) or, given its address,
a Ray cluster, so a search too heavy for one box spreads over many.

The same calls give the same results either way, in the same order: only where they run
changes. With Ray, every node must be able to import this package (the same environment, or a
Ray runtime environment that installs it).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Cluster:
    """`ray_address` (`host:port` of a Ray head, or `auto`): fits run as Ray tasks there;
    empty: in processes on this machine."""

    ray_address: str = ""

    @contextmanager
    def session(self) -> Iterator[Cluster]:
        """Connected to the Ray cluster for the block (nothing to do without one); a connection
        this block made is closed after it."""
        if not self.ray_address:
            yield self
            return
        import ray

        made = not ray.is_initialized()
        if made:
            ray.init(
                address=self.ray_address,
                logging_level="ERROR",
                log_to_driver=False,
                configure_logging=False,
            )
        try:
            yield self
        finally:
            if made:
                ray.shutdown()

    def cores(self) -> int:
        """Cores the fits can use: the cluster's, or this machine's."""
        if self.ray_address:
            import ray

            return max(int(ray.cluster_resources().get("CPU", 1)), 1)
        return os.cpu_count() or 1

    def map(
        self,
        function: Callable[..., Any],
        calls: Iterable[tuple],
        workers: int,
        shared: Sequence[Any] = (),
    ) -> Iterator[Any]:
        """`function(*args)` for each `args` of `calls`, results in their order: `workers` at a
        time in processes on this machine, taking `calls` as they are needed (one in this
        process when `workers` is 1), or as Ray tasks of one core each. `shared`: arguments
        several calls pass (by identity), sent to the cluster once."""
        if self.ray_address:
            yield from _on_ray(function, calls, shared)
            return
        if workers <= 1:
            for args in calls:
                yield function(*args)
            return
        from joblib import Parallel, delayed

        yield from Parallel(n_jobs=workers, return_as="generator", pre_dispatch="n_jobs")(
            delayed(function)(*args) for args in calls
        )


LOCAL = Cluster()
"""This machine's cores."""


def _on_ray(
    function: Callable[..., Any], calls: Iterable[tuple], shared: Sequence[Any]
) -> Iterator[Any]:
    import ray

    stored = {id(value): ray.put(value) for value in shared}
    task = ray.remote(num_cpus=1)(function)
    refs = [task.remote(*(stored.get(id(arg), arg) for arg in args)) for args in calls]
    for ref in refs:
        yield ray.get(ref)


def where() -> str:
    """Where this code runs: `ray` in a Ray worker, else `local`."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return "local"
    return "ray" if ray.get_runtime_context().worker.mode == ray.WORKER_MODE else "local"
