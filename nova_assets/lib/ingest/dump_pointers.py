"""The dump pointers in data/raw/: `fetched.json`, the dump `off_dump` brought in last, and
`latest.json`, the dump `products` accepted last (the one the tables come from)."""

from pathlib import Path

from nova_assets.lib.ingest.dump import Dump
from nova_assets.lib.paths import DataPaths


def _read_pointer(pointer: Path) -> Dump:
    if not pointer.exists():
        raise FileNotFoundError(f"no dump yet ({pointer} missing): materialize off_dump first")
    return Dump.from_json(pointer.read_text())


def latest_dump(paths: DataPaths) -> Dump:
    """The dump `products` last accepted: the one the tables come from."""
    return _read_pointer(paths.latest_dump)


def fetched_dump(paths: DataPaths) -> Dump:
    """The dump `off_dump` last brought in whole (until then, the accepted one)."""
    return _read_pointer(paths.fetched_dump if paths.fetched_dump.exists() else paths.latest_dump)


def previous_dump(paths: DataPaths) -> Dump | None:
    """The dump fetched last, if any: a fetch asks the server whether it changed, and keeps its
    file."""
    try:
        return fetched_dump(paths)
    except (FileNotFoundError, ValueError, TypeError):
        return None


def accepted_dump(paths: DataPaths) -> Dump | None:
    """The dump the tables come from, if any: pruning keeps its file."""
    try:
        return latest_dump(paths)
    except (FileNotFoundError, ValueError, TypeError):
        return None
