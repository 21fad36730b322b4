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
from maskops.crop import CROP_CODE_VERSION, CropConfig, Cropper, CropRecipe, crop_summary
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
        remover = Lazy(
            lambda: background_remover.remover(
                recipe.config.background_model, recipe.config.background_color, recipe.config.background_resolution
            )
        )
        cropper = Cropper(recipe, image_store.store(), remover if recipe.config.remove_background else None,
                          Lazy(face_detector.detector) if recipe.config.crop_face else None)  # fmt: skip
        readable = manifest[manifest["readable"]] if "readable" in manifest.columns else manifest
        start = time.perf_counter()
        records, stats = cropper.run(readable, image_store.source(dataset.root).open_rgb,
                                     lambda done, total: context.log.info(f"cropped {done} of {total} new images"))  # fmt: skip
        seconds = time.perf_counter() - start
        out, summary, sample = crop_summary(manifest, records, len(readable))
        context.log.info(f"{stats.processed} images cropped, {stats.reused} reused from the store in {seconds:.1f}s")
        labelled = "class_id" in out.columns
        return dg.MaterializeResult(
            value=out,
            data_version=dg.DataVersion(fingerprint(out, ("image_id", "crop_key", "class_id") if labelled else ("image_id", "crop_key"))),
            metadata={
                **(dataset_metadata(crops_name(variant), out, reports) if labelled else {"images": dg.MetadataValue.int(len(out))}),
                **{k: dg.MetadataValue.float(v) for k, v in summary.items()},
                "processed_images": dg.MetadataValue.int(stats.processed),
                "reused_images": dg.MetadataValue.int(stats.reused),
                "seconds": dg.MetadataValue.float(round(seconds, 2)),
                "images_per_second": dg.MetadataValue.float(round(stats.processed / seconds, 3) if stats.processed else 0.0),
                "crop_recipe": dg.MetadataValue.json(recipe.key_params()),
                "samples": sheet(reports, crops_name(variant), "samples", sample, image_store.source(dataset.root).open_rgb,
                                 lambda r: ("face" if r["face_found"] else "fallback") + f" {r['stem'][:8]}", "crop_path"),
            },
        )  # fmt: skip

    return cropped


cropped_assets = [build_cropped(variant, upstream) for variant, upstream in VARIANTS.items()]
