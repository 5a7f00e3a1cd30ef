"""The project's single entry point: every object under `defs/`, run in one process.

The in-process executor keeps all steps of a run in one process, so only one DuckDB writer
exists at a time (DuckDB allows one writer process per file).
"""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(executor=dg.in_process_executor),
    )
