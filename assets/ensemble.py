"""The end of the pipeline: the ensemble of the four variant models (validated side by side),
the competition submission, and the registered ensemble with champion / challenger aliases."""

from pathlib import Path

import dagster as dg
import pandas as pd

from assets.catalog import SERVING, WEEKLY
from assets.config import settings_config, to_settings
from assets.metadata import mlflow_tags, table
from assets.models import VARIANTS
from assets.policies import IMAGE_MODELS_POOL, stage
from maskops.crop import CropRecipe, CropRecipeError, recipe_of
from maskops.ensemble import EnsembleConfig, choose_serving, evaluate_ensemble, fill_answers, shared_recipe, validation_set_id
from maskops.figures import class_distribution_png
from maskops.files import write_csv_atomic
from maskops.reports import class_counts
from maskops.variants import model_name
from resources import BackgroundRemoverResource, CompetitionDataset, ImageStoreResource, MlflowTracking, ReportFiles, SubmissionStore

CODE_VERSION = "3"
MEMBER_INS = {model_name(v): dg.AssetIn(model_name(v)) for v in VARIANTS}


class EnsembleSettings(settings_config(EnsembleConfig)):
    """How the members are combined and when the new version becomes champion (maskops.ensemble.EnsembleConfig)."""


@stage(ins={**MEMBER_INS, "validation_crops": dg.AssetIn("relabeled_crops"), "profile_split": dg.AssetIn("profile_split")},
       group=SERVING, kinds=("mlflow", "pytorch"), code_version=CODE_VERSION, io_manager_key="record_io_manager", pool=IMAGE_MODELS_POOL,
       freshness_policy=WEEKLY)  # fmt: skip
def ensemble(
    context: dg.AssetExecutionContext, config: EnsembleSettings, validation_crops: pd.DataFrame, profile_split: pd.DataFrame,
    dataset: CompetitionDataset, image_store: ImageStoreResource, background_remover: BackgroundRemoverResource, tracking: MlflowTracking,
    reports: ReportFiles, raw_model: dict, relabeled_model: dict, cleaned_model: dict, generated_model: dict,
) -> dg.MaterializeResult:  # fmt: skip
    """Soft voting over the variant models' probabilities, validated beside each member on the shared validation
    people; registered as maskops-ensemble (a pyfunc taking raw photos) with champion/challenger promotion."""
    from maskops.crop import photo_side
    from maskops.data import validation_rows  # torch and MLflow load when the step runs, not with the code location
    from tracking.ensemble import ENSEMBLE_NAME, log_ensemble, probabilities, registered_members, rescore
    from tracking.registry import promote

    settings, service = to_settings(EnsembleConfig, config), tracking.service()
    records = [raw_model, relabeled_model, cleaned_model, generated_model]
    recipe = shared_recipe({model_name(r["variant"]): r["crop_recipe"] for r in records})
    members = registered_members(service, records)
    val, open_image = validation_rows(validation_crops, profile_split), image_store.source(dataset.root).open_rgb
    paths, y = list(val["crop_path"]), val["class_id"].to_numpy()
    evaluation = evaluate_ensemble([model_name(m['variant']) for m in members], probabilities(service, members, paths, open_image, settings.tta),
                                   y, settings.weights, groups=list(val["profile_id"]), temperature=settings.temperature)  # fmt: skip
    validation_set = validation_set_id(val["image_id"], val["class_id"])
    background = background_remover.model_file(recipe.config.background_model) if recipe.config.remove_background else None
    serving = choose_serving(evaluation, settings.member_margin, settings.member_confidence)
    context.log.info(serving.reason)
    with service.run("ensemble", {**mlflow_tags(context, CODE_VERSION), "maskops.validation_set": validation_set}) as run:
        version, spec = log_ensemble(run, evaluation, members, recipe, background, settings, serving, photo_side(validation_crops))
    score = serving.score
    promotion = promote(service.client, ENSEMBLE_NAME, version, score, validation_set, settings.promotion_margin,
                        lambda tags: rescore(service, tags, paths, y, open_image, list(val["profile_id"])))  # fmt: skip
    context.log.info(f"{ENSEMBLE_NAME} v{version}: {promotion.decision} — {promotion.reason}")
    record = {**spec, "model_uri": f"models:/{ENSEMBLE_NAME}/{version}", "version": version, "run_id": run.run_id,
              "val_metrics": serving.metrics, "member_metrics": evaluation.member_metrics, "promotion": promotion.as_dict(),
              "validation_set": validation_set, "crop_recipe": recipe.to_json(), "serving": serving.as_dict()}  # fmt: skip
    metadata = {**_metadata(evaluation, serving, members, reports), "model_uri": dg.MetadataValue.text(record["model_uri"]),
                "promotion": dg.MetadataValue.text(f"{promotion.decision}: {promotion.reason}"), "mlflow_run": tracking.run_link(run),
                "registered_version": tracking.version_link(ENSEMBLE_NAME, version)}  # fmt: skip
    return dg.MaterializeResult(value=record, data_version=dg.DataVersion(run.run_id[:12]), metadata=metadata)


def _metadata(evaluation, serving, members: list[dict], reports: ReportFiles) -> dict[str, dg.MetadataValue]:
    """What the ensemble's page shows: the served score and why, every model side by side, calibration and figures."""
    return {
        "val_macro_f1": dg.MetadataValue.float(round(serving.score, 4)),
        "soft_vote_macro_f1": dg.MetadataValue.float(round(serving.soft_vote_score, 4)),
        "serves": dg.MetadataValue.text(serving.reason),
        "best_member_macro_f1": dg.MetadataValue.float(round(max(m["macro_f1"] for m in evaluation.member_metrics), 4)),
        "scoring": dg.MetadataValue.text(evaluation.scoring),
        "comparison": table(evaluation.table.round(4)),
        "calibration": table(evaluation.calibration.round(4)),
        **{name[:-4]: reports.figure("ensemble", name[:-4], png) for name, png in evaluation.figures.items()},
        "weights": dg.MetadataValue.json({m["variant"]: round(w, 4) for m, w in zip(members, evaluation.weights, strict=True)}),
        "temperatures": dg.MetadataValue.json({m["variant"]: round(t, 4) for m, t in zip(members, evaluation.temperatures, strict=True)}),
    }


@dg.asset_check(asset="ensemble", name="ensemble_earns_its_place", blocking=False,
                description="The soft vote's validation macro F1 is at least its best member's minus member_margin, or the member's lead "
                "is within the noise of the validation people (member_confidence); when it is not, the registered version serves "
                "that member alone (and this check warns).")  # fmt: skip
def ensemble_check(ensemble: dict) -> dg.AssetCheckResult:
    serving = ensemble["serving"]
    return dg.AssetCheckResult(passed=bool(serving["earned"]), severity=dg.AssetCheckSeverity.WARN, description=serving["reason"], metadata={
        "soft_vote_macro_f1": dg.MetadataValue.float(round(serving["soft_vote_score"], 4)),
        "best_member": dg.MetadataValue.text(serving["best_member"]),
        "best_member_macro_f1": dg.MetadataValue.float(round(serving["best_member_score"], 4)),
        "margin": dg.MetadataValue.float(serving["margin"]),
        "serves": dg.MetadataValue.text("the soft vote" if serving["earned"] else f"{serving['best_member']} alone"),
        **({"best_member_wins_resamples": dg.MetadataValue.float(serving["member_wins"])} if serving.get("member_wins") is not None else {}),
    })  # fmt: skip


@stage(ins={"ensemble": dg.AssetIn("ensemble"), "eval_crops": dg.AssetIn("eval_crops"), "eval_dataset": dg.AssetIn("eval_dataset")},
       group=SERVING, kinds=("pandas", "csv"), code_version=CODE_VERSION, pool=IMAGE_MODELS_POOL)  # fmt: skip
def submission(
    context: dg.AssetExecutionContext, ensemble: dict, eval_crops: pd.DataFrame, eval_dataset: pd.DataFrame, dataset: CompetitionDataset,
    image_store: ImageStoreResource, tracking: MlflowTracking, submissions: SubmissionStore, reports: ReportFiles,
) -> dg.MaterializeResult:  # fmt: skip
    """eval/info.csv with `ans` filled by the ensemble, in the original order; written to the state folder and logged to MLflow."""
    from tracking.ensemble import voted

    order = eval_dataset.sort_values("order")["stem"].astype(str).tolist()  # info.csv's order, ids as scan read them
    target = Path(submissions.folder) / "submission.csv"
    _keep_answers_if_no_evaluation(target, order, dataset.root)
    if order and recipe_of(eval_crops, "eval_crops") != CropRecipe.from_json(ensemble["crop_recipe"]):
        raise CropRecipeError("eval_crops was made with other crop settings than the ensemble's members: re-materialize eval_crops")
    crops = eval_crops.set_index("stem")
    usable = [i for i in order if i in crops.index and pd.notna(crops.loc[i, "crop_path"])]
    service = tracking.service()
    probs = voted(service, ensemble, [crops.loc[i, "crop_path"] for i in usable], image_store.source(dataset.root).open_rgb)
    out, missing, fallback = fill_answers(order, usable, probs)
    write_csv_atomic(out, target, escape=False)  # the grader matches ids byte for byte
    with service.run("submission", {**mlflow_tags(context, CODE_VERSION), "maskops.ensemble": ensemble["model_uri"]}) as run:
        run.log_files({"submission.csv": out})
        run.log_metrics({"images": len(out), "without_crop": len(missing)})
    context.log.info(f"submission: {len(out)} answers ({len(missing)} without a readable crop got class {fallback}) -> {target}")
    chart = class_distribution_png(class_counts(out.rename(columns={"ans": "class_id"})), f"submission: {len(out)} answers")
    return dg.MaterializeResult(value=out, metadata={
        "path": dg.MetadataValue.path(str(target)), "rows": dg.MetadataValue.int(len(out)),
        "without_readable_crop": dg.MetadataValue.int(len(missing)), "ensemble": dg.MetadataValue.text(ensemble["model_uri"]),
        "predicted_classes": reports.figure("submission", "predicted_classes", chart), "mlflow_run": tracking.run_link(run),
    })  # fmt: skip


def _keep_answers_if_no_evaluation(target: Path, order: list[str], root: str) -> None:
    """An evaluation set that is gone (eval/ unmounted, being copied) must not blank the last submission; a dataset that
    never had one gets an empty submission (only the header)."""
    if order or not target.exists():
        return
    with target.open(encoding="utf-8", errors="replace") as lines:
        answers = sum(1 for _ in lines) - 1
    if answers > 0:
        raise dg.Failure(
            description=f"{Path(root) / 'eval/info.csv'} lists no evaluation images (is eval/ missing or still being copied?); "
            f"{target} holds the last submission's {answers} answers and is kept. Put eval/ back and re-materialize "
            f"eval_dataset, or delete {target} to accept an empty submission."
        )
