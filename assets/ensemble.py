"""The end of the pipeline: the ensemble of the four variant models (validated side by side),
the competition submission, and the registered ensemble with champion / challenger aliases."""

import hashlib
import io
import json
import tempfile
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

import maskops
from assets.cropped import CropSettings
from assets.models import VARIANTS
from assets.policies import DOWNSTREAM, IMAGE_MODELS_POOL
from maskops.crop import CropConfig
from maskops.data import decode_all
from maskops.ensemble import fit_weights, member_probabilities, soft_vote
from maskops.labels import CLASS_NAMES
from maskops.metrics import confusion, confusion_grid_png, confusion_png, evaluate
from maskops.reports import class_counts, class_distribution_png, png_markdown
from maskops.splits import VALIDATION, assign_split
from resources import BackgroundRemoverResource, CompetitionDataset, ImageStoreResource, MlflowTracking, SubmissionStore
from resources.registry import MEMBERS_TAG, promote

ENSEMBLE_NAME = "maskops-ensemble"
MODEL_CODE = Path(__file__).resolve().parents[1] / "resources" / "ensemble_model.py"
MASKOPS_CODE = Path(maskops.__file__).resolve().parent  # bundled with the model: it loads where maskops is not installed
MEMBER_INS = {f"model_{v}": dg.AssetIn(["model", v]) for v in VARIANTS}


class EnsembleConfig(dg.Config):
    weights: str = Field(default="equal", description="'equal', or 'fitted' on the validation people (grid over the simplex).")
    tta: bool = Field(default=False, description="Average in the horizontally flipped crop.")
    promotion_margin: float = Field(default=0.0, description="Become champion if validation macro F1 >= champion's - margin.")


def _crop_config(context: dg.AssetExecutionContext) -> CropConfig:
    """The parameters the members' crops were made with (recorded by cropped/relabeled)."""
    event = context.instance.get_latest_materialization_event(dg.AssetKey(["cropped", "relabeled"]))
    meta = event.asset_materialization.metadata if event and event.asset_materialization else {}
    if "crop_config" in meta:
        params = dict(meta["crop_config"].value)
        return CropConfig(**{**params, "background_color": tuple(params["background_color"])})
    return CropSettings().crop_config()


def _validation(crops: pd.DataFrame, split: pd.DataFrame) -> pd.DataFrame:
    usable = assign_split(crops[crops["crop_path"].notna()], split)
    return usable[usable["role"] == VALIDATION].sort_values("image_id").reset_index(drop=True)


def _validation_set(val: pd.DataFrame) -> str:
    return hashlib.sha256("\n".join(f"{i}:{c}" for i, c in zip(val["image_id"], val["class_id"], strict=True)).encode()).hexdigest()[:16]


def _probabilities(members: list[dict], paths: list[str], open_image, tta: bool) -> list[np.ndarray]:
    import mlflow

    out = []
    for member in members:
        model = mlflow.pytorch.load_model(member["model_uri"], map_location="cpu")
        out.append(member_probabilities(model, decode_all(paths, open_image, int(member["image_size"])), tta))
    return out


def _comparison_png(table: pd.DataFrame) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 2.8), dpi=80)
    colors = ["#4C72B0"] * (len(table) - 1) + ["#C44E52"]
    ax.bar(table["model"], table["macro_f1"], color=colors)
    for i, v in enumerate(table["macro_f1"]):
        ax.text(i, v, f"{v:.3f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("validation macro F1", fontsize=8)
    ax.tick_params(labelsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


@dg.asset(
    ins={**MEMBER_INS, "validation_crops": dg.AssetIn(["cropped", "relabeled"]), "profile_split": dg.AssetIn("profile_split")},
    group_name="ensemble",
    kinds={"mlflow", "pytorch"},
    code_version="1",
    io_manager_key="record_io_manager",
    pool=IMAGE_MODELS_POOL,
    automation_condition=DOWNSTREAM,
)
def ensemble(
    context: dg.AssetExecutionContext,
    config: EnsembleConfig,
    validation_crops: pd.DataFrame,
    profile_split: pd.DataFrame,
    dataset: CompetitionDataset,
    image_store: ImageStoreResource,
    background_remover: BackgroundRemoverResource,
    mlflow: MlflowTracking,
    model_raw: dict,
    model_relabeled: dict,
    model_cleaned: dict,
    model_generated: dict,
) -> dg.MaterializeResult:
    """Soft voting over the variant models' probabilities, validated beside each member on the shared validation
    people; registered as maskops-ensemble (a pyfunc taking raw photos) with champion/challenger promotion."""
    import mlflow as mlf
    from mlflow import MlflowClient

    records = [model_raw, model_relabeled, model_cleaned, model_generated]
    val = _validation(validation_crops, profile_split)
    y = val["class_id"].to_numpy()
    source = image_store.source(dataset.root)
    mlflow.activate()
    member_probs = _probabilities(records, list(val["crop_path"]), source.open_rgb, config.tta)
    if config.weights == "fitted":
        weights, _ = fit_weights(member_probs, y)
    elif config.weights == "equal":
        weights = [1.0] * len(records)
    else:
        raise ValueError(f"weights must be 'equal' or 'fitted', got {config.weights!r}")
    probs = soft_vote(member_probs, weights)
    rows = [{"model": f"model/{r['variant']}", **evaluate(y, p)} for r, p in zip(records, member_probs, strict=True)]
    rows.append({"model": "ensemble", **evaluate(y, probs)})
    table = pd.DataFrame(rows)
    matrices = {r["model"]: confusion(y, p) for r, p in zip(rows, [*member_probs, probs], strict=True)}
    chart, matrix = _comparison_png(table), confusion_png(matrices["ensemble"], "ensemble: validation")
    grid = confusion_grid_png(matrices)
    crop = _crop_config(context)
    validation_set = _validation_set(val)
    model_file = (
        Path(background_remover.model_path)
        if crop.background_model == "u2net_custom"
        else Path(background_remover.models_dir) / "u2netp.onnx"
    )
    tags = {"dagster.run_id": context.run.run_id, "dagster.asset_key": "ensemble", "maskops.validation_set": validation_set}
    with mlflow.run("ensemble", tags) as run, tempfile.TemporaryDirectory() as tmp:
        mlf.log_params(
            {
                "weights": json.dumps([round(w, 4) for w in weights]),
                "tta": config.tta,
                "member_models": json.dumps([r["model_uri"] for r in records]),
            }
        )
        mlf.log_metrics({f"val_{k}": float(v) for k, v in rows[-1].items() if k != "model"})
        mlf.log_metrics({f"{r['model'].replace('/', '_')}_val_macro_f1": r["macro_f1"] for r in rows[:-1]})
        folder = Path(tmp)
        table.to_csv(folder / "comparison.csv", index=False)
        (folder / "comparison.png").write_bytes(chart)
        (folder / "confusion_matrix.png").write_bytes(matrix)
        (folder / "confusion_matrices.png").write_bytes(grid)
        for name, m in matrices.items():
            pd.DataFrame(m, index=CLASS_NAMES, columns=CLASS_NAMES).to_csv(folder / f"confusion_{name.replace('/', '_')}.csv")
        for path in sorted(folder.iterdir()):
            mlf.log_artifact(str(path), artifact_path="evaluation")
        artifacts = {f"member_{r['variant']}": r["model_uri"] for r in records} | {"background_model": str(model_file)}
        model_config = {
            "members": [{"artifact": f"member_{r['variant']}", "image_size": int(r["image_size"]), "model_uri": r["model_uri"]} for r in records],
            "weights": weights, "tta": config.tta, "crop": {**crop.key_params(), "background_color": list(crop.background_color)},
            "background_model_name": crop.background_model,
        }  # fmt: skip
        info = mlf.pyfunc.log_model(
            name="ensemble", python_model=str(MODEL_CODE), artifacts=artifacts, model_config=model_config,
            signature=_signature(), registered_model_name=ENSEMBLE_NAME, pip_requirements=_requirements(), code_paths=[str(MASKOPS_CODE)],
        )  # fmt: skip
        run_id, experiment_id = run.info.run_id, run.info.experiment_id
    version = str(info.registered_model_version)
    client = MlflowClient()
    client.set_model_version_tag(
        ENSEMBLE_NAME, version, MEMBERS_TAG, json.dumps({"members": model_config["members"], "weights": weights, "tta": config.tta})
    )

    def rescore(champion_tags: dict) -> float:
        spec = json.loads(champion_tags[MEMBERS_TAG])
        old = _probabilities(spec["members"], list(val["crop_path"]), source.open_rgb, spec["tta"])
        return evaluate(y, soft_vote(old, spec["weights"]))["macro_f1"]

    promotion = promote(client, ENSEMBLE_NAME, version, rows[-1]["macro_f1"], validation_set, config.promotion_margin, rescore)
    context.log.info(f"{ENSEMBLE_NAME} v{version}: {promotion.decision} — {promotion.reason}")
    record = {
        "model_uri": f"models:/{ENSEMBLE_NAME}/{version}", "version": version, "run_id": run_id, "weights": weights, "tta": config.tta,
        "members": model_config["members"], "val_metrics": rows[-1], "member_metrics": rows[:-1], "promotion": promotion.as_dict(),
        "validation_set": validation_set,
    }  # fmt: skip
    markdown_table = "| model | macro F1 | mask F1 | gender F1 | age F1 | accuracy |\n|---|---:|---:|---:|---:|---:|\n" + "\n".join(
        f"| {r['model']} | {r['macro_f1']:.4f} | {r['mask_f1']:.4f} | {r['gender_f1']:.4f} | {r['age_f1']:.4f} | {r['accuracy']:.4f} |"
        for r in rows
    )
    return dg.MaterializeResult(
        value=record,
        data_version=dg.DataVersion(run_id[:12]),
        metadata={
            "val_macro_f1": dg.MetadataValue.float(round(rows[-1]["macro_f1"], 4)),
            "best_member_macro_f1": dg.MetadataValue.float(round(max(r["macro_f1"] for r in rows[:-1]), 4)),
            "comparison": dg.MetadataValue.md(markdown_table),
            "comparison_chart": dg.MetadataValue.md(png_markdown(chart, "ensemble vs members")),
            "confusion_matrix": dg.MetadataValue.md(png_markdown(matrix, "confusion matrix")),
            "confusion_matrices": dg.MetadataValue.md(png_markdown(grid, "confusion matrices: members and ensemble")),
            "weights": dg.MetadataValue.json({r["variant"]: round(w, 4) for r, w in zip(records, weights, strict=True)}),
            "model_uri": dg.MetadataValue.text(record["model_uri"]),
            "promotion": dg.MetadataValue.text(f"{promotion.decision}: {promotion.reason}"),
            "mlflow_run": (dg.MetadataValue.url if mlflow.ui_url else dg.MetadataValue.text)(mlflow.run_link(experiment_id, run_id)),
        },
    )


def _signature():
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, Schema

    outputs = [ColSpec(DataType.string, "status"), ColSpec(DataType.long, "class_id", required=False), ColSpec(DataType.string, "mask", required=False),
               ColSpec(DataType.string, "gender", required=False), ColSpec(DataType.string, "age_group", required=False)]  # fmt: skip
    outputs += [ColSpec(DataType.double, f"p_{i}", required=False) for i in range(18)]
    return ModelSignature(inputs=Schema([ColSpec(DataType.string, "image")]), outputs=Schema(outputs))


def _requirements() -> list[str]:
    """What the bundled maskops code and the model file import, at the versions they were tested with."""
    from importlib.metadata import version

    packages = ("torch", "timm", "mlflow", "facenet-pytorch", "onnxruntime", "rembg", "pillow", "numpy", "pandas", "universal-pathlib")
    return [f"{p}=={version(p)}" for p in packages]


@dg.asset(
    ins={"ensemble": dg.AssetIn("ensemble"), "eval_crops": dg.AssetIn(["cropped", "eval"]), "eval_dataset": dg.AssetIn("eval_dataset")},
    group_name="ensemble",
    kinds={"pandas", "csv"},
    code_version="1",
    io_manager_key="manifest_io_manager",
    pool=IMAGE_MODELS_POOL,
    automation_condition=DOWNSTREAM,
)
def submission(
    context: dg.AssetExecutionContext,
    ensemble: dict,
    eval_crops: pd.DataFrame,
    eval_dataset: pd.DataFrame,
    dataset: CompetitionDataset,
    image_store: ImageStoreResource,
    mlflow: MlflowTracking,
    submissions: SubmissionStore,
) -> dg.MaterializeResult:
    """eval/info.csv with `ans` filled by the ensemble, in the original order; written to the state folder and logged to MLflow."""
    import mlflow as mlf

    info = pd.read_csv(Path(dataset.root) / "eval" / "info.csv", dtype={"ImageID": str})
    crops = eval_crops.set_index("stem")
    usable = [i for i in info["ImageID"] if i in crops.index and pd.notna(crops.loc[i, "crop_path"])]
    mlflow.activate()
    source = image_store.source(dataset.root)
    probs = soft_vote(
        _probabilities(ensemble["members"], [crops.loc[i, "crop_path"] for i in usable], source.open_rgb, ensemble["tta"]),
        ensemble["weights"],
    )
    answers = dict(zip(usable, probs.argmax(axis=1).tolist(), strict=True))
    fallback = int(np.bincount(probs.argmax(axis=1), minlength=18).argmax()) if len(usable) else 0
    missing = [i for i in info["ImageID"] if i not in answers]
    out = pd.DataFrame({"ImageID": info["ImageID"], "ans": [answers.get(i, fallback) for i in info["ImageID"]]}).astype({"ans": "int64"})
    folder = Path(submissions.folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "submission.csv"
    tmp = folder / f".submission.{context.run.run_id[:8]}.csv"
    out.to_csv(tmp, index=False)
    tmp.replace(target)
    with mlflow.run("submission", {"dagster.run_id": context.run.run_id, "maskops.ensemble": ensemble["model_uri"]}):
        mlf.log_artifact(str(target))
        mlf.log_metrics({"images": len(out), "without_crop": len(missing)})
    context.log.info(f"submission: {len(out)} answers ({len(missing)} without a readable crop got class {fallback}) -> {target}")
    counts = class_counts(out.rename(columns={"ans": "class_id"}))
    return dg.MaterializeResult(
        value=out,
        metadata={
            "path": dg.MetadataValue.path(str(target)),
            "rows": dg.MetadataValue.int(len(out)),
            "without_readable_crop": dg.MetadataValue.int(len(missing)),
            "ensemble": dg.MetadataValue.text(ensemble["model_uri"]),
            "predicted_classes": dg.MetadataValue.md(
                png_markdown(class_distribution_png(counts, f"submission: {len(out)} answers"), "predicted classes")
            ),
        },
    )
