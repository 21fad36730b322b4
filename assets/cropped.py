"""<variant>_crops: background removal and face crop for every dataset variant, one factory.

The crops live in the content-addressed image store, so variants that share images
(raw, relabeled and cleaned share almost all) compute each crop once.
"""

import time

import dagster as dg
import pandas as pd

from assets.catalog import CROPS
from assets.config import settings_config, to_settings
from assets.metadata import dataset_metadata, sheet
from assets.policies import IMAGE_MODELS_POOL, stage
from maskops.crop import CROP_CODE_VERSION, CropConfig, Cropper, CropRecipe, CropRecipeError, crop_summary, recipe_of
from maskops.faces import Lazy
from maskops.files import file_digest
from maskops.layout import fingerprint
from maskops.variants import crops_name
from resources import BackgroundRemoverResource, CompetitionDataset, FaceDetectorResource, ImageStoreResource, ReportFiles

VARIANTS = {
    "raw": "raw_dataset",
    "relabeled": "relabeled_dataset",
    "cleaned": "cleaned_dataset",
    "generated": "generated_dataset",
    "eval": "eval_dataset",
}


class CropSettings(settings_config(CropConfig)):
    """How crops are made (maskops.crop.CropConfig); the face detector's settings and the background model come from resources."""


def crop_recipe(config: CropSettings, face_detector: FaceDetectorResource, background_remover: BackgroundRemoverResource) -> CropRecipe:
    """The crop settings plus the detector's settings and the background model file's content: all of what makes a crop."""
    settings = to_settings(CropConfig, config)
    digest = file_digest(background_remover.model_file(settings.background_model)) if settings.remove_background else ""
    return CropRecipe(settings, face_detector.config(), digest)


def build_cropped(variant: str, upstream: str) -> dg.AssetsDefinition:
    @stage(key=crops_name(variant), ins={"manifest": dg.AssetIn(upstream)}, group=CROPS, tags={"variant": variant}, code_version=CROP_CODE_VERSION,
           kinds=("pytorch", "parquet"), pool=IMAGE_MODELS_POOL,
           description=f"{upstream} with a face crop per image (crop_path, face_prob, box, fallback, crop_recipe) from the image store.")  # fmt: skip
    def cropped(
        context: dg.AssetExecutionContext, config: CropSettings, manifest: pd.DataFrame, dataset: CompetitionDataset,
        image_store: ImageStoreResource, face_detector: FaceDetectorResource, background_remover: BackgroundRemoverResource,
        reports: ReportFiles,
    ) -> dg.MaterializeResult:  # fmt: skip
        recipe = crop_recipe(config, face_detector, background_remover)
        return crop_manifest(
            context, crops_name(variant), recipe, manifest, dataset, image_store, face_detector, background_remover, reports
        )

    return cropped


def crop_manifest(
    context: dg.AssetExecutionContext, name: str, recipe: CropRecipe, manifest: pd.DataFrame, dataset: CompetitionDataset,
    image_store: ImageStoreResource, face_detector: FaceDetectorResource, background_remover: BackgroundRemoverResource,
    reports: ReportFiles, labelled: bool = True,
) -> dg.MaterializeResult:  # fmt: skip
    """Crop every readable image of `manifest` with `recipe` (reusing what the store holds); the manifest with its crops.
    `labelled`: the rows carry one of the 18 classes (mask-only photos do not)."""
    config = recipe.config
    remover = Lazy(lambda: background_remover.remover(config.background_model, config.background_color, config.background_resolution))
    cropper = Cropper(recipe, image_store.store(), remover if config.remove_background else None,
                      Lazy(face_detector.detector) if config.crop_face else None)  # fmt: skip
    readable = manifest[manifest["readable"]] if "readable" in manifest.columns else manifest
    start = time.perf_counter()
    records, stats = cropper.run(readable, image_store.source(dataset.root).open_rgb,
                                 lambda done, total: context.log.info(f"cropped {done} of {total} new images"))  # fmt: skip
    seconds = time.perf_counter() - start
    out, summary, sample = crop_summary(manifest, records, len(readable))
    context.log.info(f"{stats.processed} images cropped, {stats.reused} reused from the store in {seconds:.1f}s")
    labelled = labelled and "class_id" in out.columns
    metadata = {
        **(dataset_metadata(name, out, reports) if labelled else {"images": dg.MetadataValue.int(len(out))}),
        **{k: dg.MetadataValue.float(v) for k, v in summary.items()},
        "processed_images": dg.MetadataValue.int(stats.processed),
        "reused_images": dg.MetadataValue.int(stats.reused),
        "seconds": dg.MetadataValue.float(round(seconds, 2)),
        "images_per_second": dg.MetadataValue.float(round(stats.processed / seconds, 3) if stats.processed else 0.0),
        "crop_recipe": dg.MetadataValue.json(recipe.key_params()),
        "samples": sheet(reports, name, "samples", sample, image_store.source(dataset.root).open_rgb,
                         lambda r: ("face" if r["face_found"] else "fallback") + f" {r['stem'][:8]}", "crop_path"),
    }  # fmt: skip
    version = fingerprint(out, ("image_id", "crop_key", "class_id") if "class_id" in out.columns else ("image_id", "crop_key"))
    return dg.MaterializeResult(value=out, data_version=dg.DataVersion(version), metadata=metadata)


@stage(key=crops_name("mask_only"), ins={"manifest": dg.AssetIn("mask_only_dataset"), "relabeled_crops": dg.AssetIn("relabeled_crops")},
       group=CROPS, tags={"variant": "mask_only"}, code_version=CROP_CODE_VERSION, kinds=("pytorch", "parquet"), pool=IMAGE_MODELS_POOL,
       description="mask_only_dataset cropped exactly as relabeled_crops (its crop recipe: the one every model validates on), so the "
       "models can train their mask task on them.")  # fmt: skip
def mask_only_crops(
    context: dg.AssetExecutionContext, manifest: pd.DataFrame, relabeled_crops: pd.DataFrame, dataset: CompetitionDataset,
    image_store: ImageStoreResource, face_detector: FaceDetectorResource, background_remover: BackgroundRemoverResource,
    reports: ReportFiles,
) -> dg.MaterializeResult:  # fmt: skip
    recipe = recipe_of(relabeled_crops, "relabeled_crops")
    if len(manifest):  # the resources must still make the crops the recipe describes
        if recipe.config.crop_face and face_detector.config() != recipe.detector:
            raise CropRecipeError(
                "the face detector's settings changed since relabeled_crops was made; re-materialize relabeled_crops first"
            )
        if (
            recipe.config.remove_background
            and file_digest(background_remover.model_file(recipe.config.background_model)) != recipe.background_sha256
        ):
            raise CropRecipeError("the background model file changed since relabeled_crops was made; re-materialize relabeled_crops first")
    return crop_manifest(context, crops_name("mask_only"), recipe, manifest, dataset, image_store, face_detector, background_remover, reports,
                         labelled=False)  # fmt: skip


cropped_assets = [*(build_cropped(variant, upstream) for variant, upstream in VARIANTS.items()), mask_only_crops]
