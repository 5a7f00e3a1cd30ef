"""Checks beside the model assets: the model must beat the majority and OFF's own rules, the
champion must be the best."""

import dagster as dg

from nova_assets.defs.automation import runs_with_its_asset
from nova_assets.defs.ml.champion import champion_model
from nova_assets.defs.ml.evaluation import evaluation_report
from nova_assets.defs.resources import DataDir, MlflowStore
from nova_assets.lib.evaluation.promotion import beats_majority, beats_rules
from nova_assets.lib.evaluation.report_files import read_report
from nova_assets.lib.ml.registry import champion_version


@dg.asset_check(
    asset=evaluation_report,
    automation_condition=runs_with_its_asset(),
    blocking=True,
    description="The model beats always answering the majority group in macro-F1 on the mix of "
    "slices; a model that does not can never become champion.",
)
def model_beats_majority(data_dir: DataDir) -> dg.AssetCheckResult:
    report = read_report(data_dir.paths.reports)
    return dg.AssetCheckResult(
        passed=beats_majority(report),
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "model_accuracy": report["model"]["accuracy"],
            "majority_accuracy": report["majority"]["accuracy"],
            "model_macro_f1": report["model"]["macro_f1"],
            "majority_macro_f1": report["majority"]["macro_f1"],
        },
    )


@dg.asset_check(
    asset=evaluation_report,
    automation_condition=runs_with_its_asset(),
    blocking=True,
    description="The model is at least as good as OFF's own rules (markers on whatever evidence "
    "is left) in macro-F1 on the mix of slices; a model that is not can never become champion.",
)
def model_beats_rules(data_dir: DataDir) -> dg.AssetCheckResult:
    report = read_report(data_dir.paths.reports)
    return dg.AssetCheckResult(
        passed=beats_rules(report),
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "model_macro_f1": report["model"]["macro_f1"],
            "rules_macro_f1": report["rules"]["macro_f1"],
            **{
                f"{name}_model_minus_rules": entry["model"]["macro_f1"] - entry["rules"]["macro_f1"]
                for name, entry in report["slices"].items()
            },
        },
    )


@dg.asset_check(
    asset=champion_model,
    automation_condition=runs_with_its_asset(),
    blocking=True,
    description="The champion alias exists and points at the best of the evaluated model and the "
    "previous champion on the mix of test slices, so predictions use the best model.",
)
def champion_is_best(mlflow_store: MlflowStore, data_dir: DataDir) -> dg.AssetCheckResult:
    report = read_report(data_dir.paths.reports)
    champion = champion_version(mlflow_store.client())
    scores = {report["model"]["version"]: report["model"]["macro_f1"]}
    if report.get("champion"):
        scores[report["champion"]["version"]] = report["champion"]["macro_f1"]
    best = max(scores.values())
    current = scores.get(str(champion.version)) if champion else None
    return dg.AssetCheckResult(
        passed=current is not None and current >= best,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "champion_version": str(champion.version) if champion else "none",
            "champion_macro_f1": current if current is not None else -1.0,
            "best_macro_f1": best,
        },
    )
