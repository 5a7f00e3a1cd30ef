"""Declarative automation evaluated on a real instance: a new dump requests everything below it,
with its checks, in one tick (so one run); the same dump again requests nothing."""

import dagster as dg

from nova_assets.definitions import defs

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
