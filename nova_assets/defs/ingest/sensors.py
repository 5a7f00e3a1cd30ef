"""`new_dump_sensor` and `refresh_schedule`: what starts `off_dump` without a person.

Neither opens the warehouse (a sensor must never hold the DuckDB file); they look at files
and at the dump URL's HTTP validators only, and leave the downloading to `off_dump`.
"""

import json
import time
from pathlib import Path

import dagster as dg

from nova_assets.defs.ingest.assets import OffDumpConfig, off_dump
from nova_assets.defs.resources import DataDir, DumpSource
from nova_assets.lib.ingest.download import is_url, redact
from nova_assets.lib.ingest.dump_pointers import previous_dump
from nova_assets.lib.ingest.dump_watch import (
    fingerprint,
    list_candidates,
    stable_candidates,
    url_identity,
)
from nova_assets.lib.paths import refresh_cron, sensor_interval_seconds

SEEN_LIMIT = 200
URL_TIMEOUT_SECONDS = 10.0


def _request(identity: str, source: str, reason: str) -> dg.RunRequest:
    """A run of off_dump on `source` ("": NOVA_DUMP_URL, which may hold a token the run's
    config would show)."""
    return dg.RunRequest(
        run_key=identity,
        run_config=dg.RunConfig(ops={"off_dump": OffDumpConfig(source=source)}),
        tags={"nova/dump": identity[:63], "nova/trigger": reason},
    )


@dg.sensor(
    target=off_dump,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=sensor_interval_seconds(),
    description="Starts off_dump for each new dump: a file dropped into NOVA_INCOMING_DIR once its "
    "size stops changing, a changed NOVA_DUMP_URL file, or new ETag/Last-Modified/length at an "
    "http(s) NOVA_DUMP_URL (checked every NOVA_URL_CHECK_SECONDS, default 3600). One run per "
    "dump: the run key is its identity.",
)
def new_dump_sensor(
    context: dg.SensorEvaluationContext, dump_source: DumpSource, data_dir: DataDir
) -> dg.SensorResult | dg.SkipReason:
    cursor = json.loads(context.cursor) if context.cursor else {}
    first_tick = not cursor
    seen: list[str] = cursor.get("seen", [])
    source = dump_source.url
    requests: list[dg.RunRequest] = []
    notes: list[str] = []

    incoming = data_dir.paths.incoming
    incoming.mkdir(parents=True, exist_ok=True)
    files = list_candidates(incoming, None if is_url(source) else Path(source))
    stable, sizes = stable_candidates(files, cursor.get("sizes", {}), now_ns=time.time_ns())
    waiting = len(files) - len(stable)
    new = []
    for candidate in stable:
        identity = fingerprint(candidate.path)
        if identity not in seen:
            new.append((candidate, identity))
            seen.append(identity)
    if first_tick and len(new) > 1:
        notes.append(f"first look: {len(new)} dumps found, only the newest is ingested")
        new = new[-1:]
    requests += [_request(identity, str(c.path), "file") for c, identity in new]
    if waiting:
        notes.append(f"{waiting} file(s) not yet stable (still being written?)")

    url_state = cursor.get("url", {})
    due = time.time() - url_state.get("checked", 0) >= dump_source.url_check_seconds
    if is_url(source) and due:
        try:
            identity = url_identity(source, timeout=URL_TIMEOUT_SECONDS)
        except OSError as exc:
            context.log.warning(f"checking {redact(source)} failed, will retry next tick: {exc}")
            notes.append(f"URL check failed: {exc}")
        else:
            if identity != url_state.get("identity"):
                requests.append(_request(identity, "", "url"))
            url_state = {"identity": identity, "checked": time.time()}

    new_cursor = json.dumps({"seen": seen[-SEEN_LIMIT:], "sizes": sizes, "url": url_state})
    if requests:
        return dg.SensorResult(run_requests=requests, cursor=new_cursor)
    context.update_cursor(new_cursor)
    return dg.SkipReason("no new dump" + (f" ({'; '.join(notes)})" if notes else ""))


@dg.schedule(
    cron_schedule=refresh_cron(),
    target=off_dump,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Weekly (NOVA_REFRESH_CRON, default Monday 04:00) check of NOVA_DUMP_URL: starts "
    "off_dump only if the server's ETag/Last-Modified differ from the dump held now; off_dump "
    "then asks again with a conditional request, so an unchanged dump is never downloaded.",
)
def refresh_schedule(
    context: dg.ScheduleEvaluationContext, dump_source: DumpSource, data_dir: DataDir
) -> dg.RunRequest | dg.SkipReason:
    source = dump_source.url
    held = previous_dump(data_dir.paths)
    if not is_url(source):
        return dg.RunRequest(run_key=f"refresh-{context.scheduled_execution_time:%Y%m%dT%H%M}")
    try:
        identity = url_identity(source, timeout=URL_TIMEOUT_SECONDS)
    except OSError as exc:
        return dg.SkipReason(f"could not reach {redact(source)}: {exc}; next tick will try again")
    if held is not None and held.source == redact(source) and identity in _identities(held):
        return dg.SkipReason(
            f"{redact(source)} unchanged since dump {held.sha256[:12]} ({identity})"
        )
    return dg.RunRequest(run_key=f"refresh-{identity}")


def _identities(dump) -> set[str]:
    """The identities `url_identity` would have given for the held dump."""
    return {f"etag:{dump.etag}", f"modified:{dump.last_modified}|length:{dump.bytes}"}
