"""Declarative automation: everything downstream of `off_dump` follows a changed dump.

An asset is requested when a parent's data version changed (not merely re-materialized), or
when a parent is being requested in the same tick, so one new dump gives one run of the whole
chain, and the same dump fetched again gives none. An asset whose run failed (a bad dump
refused by `products`, in a `dg launch` or a run of this sensor) is not requested again for the
same dump: only a new dump, or a change of its code version, tries again.
"""

import dagster as dg

from nova_assets.lib.paths import sensor_interval_seconds

AC = dg.AutomationCondition


def follows_changed_dump() -> dg.AutomationCondition:
    """Like `eager()`, but triggered by a changed data version upstream, never past a failed
    blocking check, and never twice on the same input after a failed run (however launched)."""
    parent_changed = AC.any_deps_match(
        (AC.data_version_changed() & ~AC.executed_with_root_target()) | AC.will_be_requested()
    )
    code_fixed = AC.code_version_changed() & AC.execution_failed()
    handled = (
        AC.newly_requested()
        | AC.newly_updated()
        | AC.initial_evaluation()
        | AC.execution_failed().newly_true()
    )
    return (
        (parent_changed | code_fixed).since(handled)
        & ~AC.any_deps_missing()
        & ~AC.any_deps_in_progress()
        & ~AC.in_progress()
        & AC.all_deps_blocking_checks_passed()
    ).with_label("follows_changed_dump")


def runs_with_its_asset() -> dg.AutomationCondition:
    """For a check: requested with its asset, so the two run together and the assets below,
    which wait for the blocking checks, are requested in the same tick (one run per dump)."""
    return AC.any_deps_match(AC.will_be_requested()).with_label("runs_with_its_asset")


nova_automation_sensor = dg.AutomationConditionSensorDefinition(
    "nova_automation_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=sensor_interval_seconds(),
    description="Materializes what follows a new dump (see follows_changed_dump).",
)

all_assets = dg.define_asset_job(
    "all_assets",
    selection=dg.AssetSelection.all(),
    description="Every asset and check, from the dump to predictions and drift: the README's "
    "first command (`dg launch --job all_assets`).",
)
