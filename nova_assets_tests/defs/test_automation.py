"""Declarative automation evaluated on a real instance: a new dump requests everything below it,
with its checks, in one tick (so one run); the same dump again requests nothing."""

import dagster as dg

from nova_assets.definitions import defs
from nova_assets.lib.paths import SAMPLE_DUMP
from nova_assets_tests.helpers import write_dump

EVERYTHING = dg.AssetSelection.all() | dg.AssetSelection.all_asset_checks()


def requested(result) -> set[str]:
    return {r.key.to_user_string() for r in result.results if r.true_subset.size}


def test_a_new_dump_requests_everything_below_it_in_one_tick_and_the_same_dump_nothing(data_dir):
    definitions = defs()
    downstream = {k.to_user_string() for k in definitions.resolve_all_asset_keys()} - {"off_dump"}
    assert len(downstream) == 8
    job = definitions.resolve_implicit_global_asset_job_def()
    fetch = [dg.AssetKey("off_dump")]
    with dg.instance_for_test() as instance:
        first = dg.evaluate_automation_conditions(
            defs=definitions, instance=instance, asset_selection=EVERYTHING
        )
        assert requested(first) == set()
        assert job.execute_in_process(instance=instance, asset_selection=fetch).success
        tick = dg.evaluate_automation_conditions(
            defs=definitions, instance=instance, asset_selection=EVERYTHING, cursor=first.cursor
        )
        asked = requested(tick)
        assert {k for k in asked if ":" not in k} == downstream
        checks = {k.split(":")[1] for k in asked if ":" in k}
        assert {"products_row_count", "split_is_stable", "model_beats_rules"} <= checks
        assert tick.total_requested == len(asked)

        # Run what was asked (as the sensor's run would), then fetch the same dump again.
        assert job.execute_in_process(instance=instance).success
        settled = dg.evaluate_automation_conditions(
            defs=definitions, instance=instance, asset_selection=EVERYTHING, cursor=tick.cursor
        )
        assert job.execute_in_process(instance=instance, asset_selection=fetch).success
        again = dg.evaluate_automation_conditions(
            defs=definitions, instance=instance, asset_selection=EVERYTHING, cursor=settled.cursor
        )
        assert requested(again) == set()


def with_products_code(definitions: dg.Definitions, version: str) -> dg.Definitions:
    """The same definitions with `products` at another code version, as after a fix to it."""
    key = dg.AssetKey("products")
    products = next(a for a in definitions.assets or [] if getattr(a, "keys", None) == {key})
    fixed = products.map_asset_specs(lambda spec: spec.replace_attributes(code_version=version))
    return dg.Definitions(
        assets=[fixed if a is products else a for a in definitions.assets or []],
        asset_checks=definitions.asset_checks,
        resources=definitions.resources,
        jobs=definitions.jobs,
        sensors=definitions.sensors,
        schedules=definitions.schedules,
        executor=definitions.executor,
    )


def test_a_dump_that_failed_is_not_retried_until_it_or_the_code_changes(
    data_dir, monkeypatch, tmp_path, sample_lines
):
    """One mistake, one failed run: a `dg launch` on a truncated dump fails at products; the
    automation of a running `dg dev` does not start a second run on the same dump."""
    whole = SAMPLE_DUMP.read_bytes()
    truncated = tmp_path / "truncated.tsv.gz"
    truncated.write_bytes(whole[: len(whole) // 2])
    monkeypatch.setenv("NOVA_DUMP_URL", str(truncated))
    definitions = defs()
    job = definitions.resolve_implicit_global_asset_job_def()
    with dg.instance_for_test() as instance:
        start = dg.evaluate_automation_conditions(
            defs=definitions, instance=instance, asset_selection=EVERYTHING
        )
        launched = job.execute_in_process(instance=instance, raise_on_error=False)
        assert not launched.success and "truncated gzip" in str(
            launched.get_step_failure_events()[0].step_failure_data.error
        )
        cursor = start.cursor
        for _ in range(2):  # the tick after the failure, and the next ones
            tick = dg.evaluate_automation_conditions(
                defs=definitions, instance=instance, asset_selection=EVERYTHING, cursor=cursor
            )
            assert requested(tick) == set()
            cursor = tick.cursor

        fixed = dg.evaluate_automation_conditions(
            defs=with_products_code(definitions, "fixed"),
            instance=instance,
            asset_selection=EVERYTHING,
            cursor=cursor,
        )
        assert "products" in requested(fixed)

        monkeypatch.setenv("NOVA_DUMP_URL", str(write_dump(tmp_path / "new.tsv", sample_lines)))
        fetch = [dg.AssetKey("off_dump")]
        assert job.execute_in_process(instance=instance, asset_selection=fetch).success
        new_dump = dg.evaluate_automation_conditions(
            defs=definitions, instance=instance, asset_selection=EVERYTHING, cursor=cursor
        )
        assert {"products", "test_split", "nova_model"} <= requested(new_dump)
