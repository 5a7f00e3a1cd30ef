"""`champion_model`: the alias predictions follow, moved only to a better model."""

import dagster as dg

from nova_assets.defs.automation import follows_changed_dump
from nova_assets.defs.ml.evaluation import evaluation_report
from nova_assets.defs.resources import DataDir, MlflowStore
from nova_assets.lib.evaluation.promotion import promotion_decision
from nova_assets.lib.evaluation.report_files import read_report
from nova_assets.lib.ml.registry import CHAMPION, MODEL_NAME, champion_version, latest_version


@dg.asset(
    deps=[evaluation_report],
    group_name="ml",
    automation_condition=follows_changed_dump(),
    kinds={"mlflow"},
    description=f"The MLflow alias '{CHAMPION}' on {MODEL_NAME}: moved to the newest version only "
    "if it beats the majority, OFF's rules and the current champion in macro-F1 on the mix of "
    "test slices weighted like the unlabelled products (the first model that passes wins).",
)
def champion_model(
    context: dg.AssetExecutionContext, mlflow_store: MlflowStore, data_dir: DataDir
) -> dg.MaterializeResult:
    client = mlflow_store.client()
    report = read_report(data_dir.paths.reports)
    newest = latest_version(client)
    if newest is None or str(newest.version) != report["model"]["version"]:
        raise RuntimeError(
            f"the evaluation report is for v{report['model']['version']} but the newest version is "
            f"v{newest.version if newest else 'none'}: rematerialize evaluation_report"
        )
    current = champion_version(client)
    promote, reason = promotion_decision(report, current and str(current.version))
    if promote:
        client.set_registered_model_alias(MODEL_NAME, CHAMPION, newest.version)
    champion = champion_version(client)
    context.log.info(("promoted: " if promote else "kept: ") + reason)
    return dg.MaterializeResult(
        metadata={
            "action": "promoted" if promote else "kept",
            "reason": reason,
            "champion_version": str(champion.version) if champion else "none",
            "candidate_version": str(newest.version),
            "candidate_macro_f1": report["model"]["macro_f1"],
        }
    )
