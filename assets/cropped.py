"""cropped/<variant>: background removal and face crop for every dataset variant, one factory.

The crops live in the content-addressed image store, so variants that share images
(raw, relabeled and cleaned share almost all) compute each crop once.
"""

import time

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.metadata import dataset_metadata, sheet_metadata
from assets.policies import DOWNSTREAM, IMAGE_MODELS_POOL
from maskops.crop import CROP_CODE_VERSION, CropConfig, Cropper
from maskops.faces import Lazy
from maskops.layout import fingerprint
from resources import BackgroundRemoverResource, CompetitionDataset, FaceDetectorResource, ImageStoreResource

VARIANTS = {
    "raw": "raw_dataset",
    "relabeled": "relabeled_dataset",
    "cleaned": "cleaned_dataset",
    "generated": "generated_dataset",
    "eval": "eval_dataset",
}


class CropSettings(dg.Config):
    remove_background: bool = Field(default=True, description="Replace the background with background_color (rembg).")
    crop_face: bool = Field(default=True, description="Crop to the MTCNN face box plus margin (centre crop when no face).")
    order: str = Field(default="background_first", description="'background_first' (as the original) or 'crop_first'.")
    margin: int = Field(default=40, description="Pixels around the face box.")
    size: int = Field(default=256, description="Side of the square output crop.")
    min_face_prob: float = Field(default=0.9, description="Faces found with less confidence use the centre-crop fallback.")
    fallback_fraction: float = Field(default=0.8, description="Centre crop side as a fraction of the shorter image side.")
    background_model: str = Field(default="u2netp", description="rembg model, provisioned by `maskops fetch-models`.")
    background_color: list[int] = Field(default=[0, 0, 0])
    batch_size: int = Field(default=8, description="Images per MTCNN batch.")

    def crop_config(self) -> CropConfig:
        return CropConfig(
            remove_background=self.remove_background, crop_face=self.crop_face, order=self.order, margin=self.margin, size=self.size,
            min_face_prob=self.min_face_prob, fallback_fraction=self.fallback_fraction, background_model=self.background_model,
            background_color=tuple(self.background_color),
        )  # fmt: skip


def build_cropped(variant: str, upstream: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=["cropped", variant],
        ins={"manifest": dg.AssetIn(upstream)},
        group_name="cropped",
        pool=IMAGE_MODELS_POOL,
        automation_condition=DOWNSTREAM,
        code_version=CROP_CODE_VERSION,
        kinds={"pytorch", "parquet"},
        io_manager_key="manifest_io_manager",
        description=f"{upstream} with a face crop per image (crop_path, face_prob, box, fallback) from the image store.",
    )
    def cropped(
        context: dg.AssetExecutionContext,
        config: CropSettings,
        manifest: pd.DataFrame,
        dataset: CompetitionDataset,
        image_store: ImageStoreResource,
        face_detector: FaceDetectorResource,
        background_remover: BackgroundRemoverResource,
    ) -> dg.MaterializeResult:
        cfg = config.crop_config()
        store = image_store.store()
        source = image_store.source(dataset.root)
        remover = Lazy(lambda: background_remover.remover(cfg.background_model, cfg.background_color)) if cfg.remove_background else None
        detector = Lazy(face_detector.detector) if cfg.crop_face else None
        cropper = Cropper(cfg, store, remover, detector, batch_size=config.batch_size)
        readable = manifest[manifest["readable"]] if "readable" in manifest.columns else manifest
        step = max(1, len(readable) // 10)

        def progress(done: int, total: int) -> None:
            if done % step < config.batch_size or done == total:
                context.log.info(f"cropped {done} of {total} new images")

        start = time.perf_counter()
        records, stats = cropper.run(readable, source.open_rgb, progress)
        seconds = time.perf_counter() - start
        out = manifest.merge(records, on="content_hash", how="left")
        out["face_found"] = out["face_found"].fillna(False).astype(bool)
        out["fallback"] = out["fallback"].fillna(False).astype(bool)
        found = out[out["face_found"]]
        fallback = out[out["fallback"]]
        sample = pd.concat([found.sample(n=min(12, len(found)), random_state=0), fallback.head(4)])
        context.log.info(f"{stats.processed} images cropped, {stats.reused} reused from the store in {seconds:.1f}s")
        return dg.MaterializeResult(
            value=out,
            data_version=dg.DataVersion(
                fingerprint(out, ("image_id", "crop_key", "class_id") if "class_id" in out.columns else ("image_id", "crop_key"))
            ),
            metadata={
                **(
                    dataset_metadata(f"cropped/{variant}", out) if "class_id" in out.columns else {"images": dg.MetadataValue.int(len(out))}
                ),
                "detection_rate": dg.MetadataValue.float(round(len(found) / max(len(readable), 1), 4)),
                "fallback_rate": dg.MetadataValue.float(round(len(fallback) / max(len(readable), 1), 4)),
                "processed_images": dg.MetadataValue.int(stats.processed),
                "reused_images": dg.MetadataValue.int(stats.reused),
                "seconds": dg.MetadataValue.float(round(seconds, 2)),
                "crop_config": dg.MetadataValue.json(cfg.key_params()),
                "images_per_second": dg.MetadataValue.float(round(stats.processed / seconds, 3) if stats.processed else 0.0),
                "samples": sheet_metadata(
                    sample, source.open_rgb, lambda r: ("face" if r["face_found"] else "fallback") + f" {r['stem'][:8]}", "crop_path"
                ),
            },
        )

    return cropped


cropped_assets = [build_cropped(variant, upstream) for variant, upstream in VARIANTS.items()]
