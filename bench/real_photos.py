"""The champion on real photographs: the models only ever trained on drawn people — do they transfer?

    make demo && .venv/bin/python bench/real_photos.py [--faces 60] [--model models:/maskops-ensemble@champion]

Real faces available offline, none ever trained on: scikit-image's sample photos with a face (`astronaut`, `camera`)
and the first 60 faces of its `lfw_subset` (Labeled Faces in the Wild, 25 x 25 greyscale), each enlarged and framed
like a phone portrait (the face about a third of a 3:4 frame on a plain grey background). The other 40 faces of
lfw_subset are what `maskops synth` writes under mask_only/ for training (maskops.synth.real_faces): same framing,
other people; the astronaut and the camera man are framed like nothing the models trained on. Every photo goes in unmasked,
and again with a mask painted on by the project's own generator (maskops.synth.masks, along MTCNN's landmarks, as
the `generated_dataset` does). Figures:
- real_photos_faces_found: share of the photos in which MTCNN finds a face (no baseline);
- real_photos_unmasked_not_wear / real_photos_masked_wear: share of the unmasked photos the registered model calls
  "not_wear", and of the painted ones it calls "wear"; baseline 1/3, a guess among the three mask states.
- real_photos_masked_vs_unmasked_confidence: mean confidence on the painted vs the unmasked photos (report).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit

from maskops.settings import Settings


def real_photos(faces: int) -> dict[str, Image.Image]:
    """Real photographs with one face each: scikit-image's samples, and the first `faces` faces of lfw_subset — the
    measurement set, which nothing trains on (maskops.synth.real_faces keeps the faces that may train apart)."""
    from skimage import data

    from maskops.synth.real_faces import MEASURED_FACES, lfw_faces

    if faces > MEASURED_FACES:
        raise SystemExit(f"--faces: at most {MEASURED_FACES}; lfw_subset's later faces may be trained on (maskops synth's mask_only/)")
    photos = {"astronaut": Image.fromarray(data.astronaut()), "camera": Image.fromarray(data.camera()).convert("RGB")}
    return photos | lfw_faces(range(faces))


def painted(photos: dict[str, Image.Image], seed: int = 0) -> tuple[dict[str, Image.Image], int]:
    """Each photo with a worn mask painted along its landmarks (photos without a detected face are left out)."""
    from maskops.faces import FaceDetector
    from maskops.synth.masks import Placement, paint_mask, random_style

    detector, rng = FaceDetector(), np.random.default_rng(seed)
    found = detector.detect(list(photos.values()))
    out = {}
    for (name, photo), face in zip(photos.items(), found, strict=True):
        if face is not None:
            out[name] = paint_mask(photo, face.landmarks, Placement.WEAR, random_style(rng), rng)[0]
    return out, sum(f is not None for f in found)


def jpeg(picture: Image.Image) -> bytes:
    buf = io.BytesIO()
    picture.save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=int, default=60, help="faces of lfw_subset to use (at most 60: the rest may train)")
    parser.add_argument("--model", default="models:/maskops-ensemble@champion")
    parser.add_argument("--save", type=Path, help="also write the photos and the predictions here")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from tracking.service import TrackingService

    settings = Settings.from_env()
    photos = real_photos(args.faces)
    masked, found = painted(photos)
    model = TrackingService(settings.mlflow_uri).load_pyfunc(args.model)
    results = {}
    for kind, pictures in (("unmasked", photos), ("masked", masked)):
        out = model.predict(pd.DataFrame({"image": [jpeg(p) for p in pictures.values()]}))
        results[kind] = out.assign(photo=list(pictures), kind=kind)
        if args.save:
            for name, picture in pictures.items():
                (args.save / kind).mkdir(parents=True, exist_ok=True)
                picture.save(args.save / kind / f"{name}.jpg")
    table = pd.concat(results.values(), ignore_index=True)
    if args.save:
        table.drop(columns=[c for c in table.columns if c.startswith("p_")]).to_csv(args.save / "predictions.csv", index=False)
    unmasked, painted_rows = results["unmasked"], results["masked"]
    extra = {"photos": len(photos), "model": args.model, "calls_unmasked": unmasked["mask"].value_counts().to_dict(),
             "calls_masked": painted_rows["mask"].value_counts().to_dict()}  # fmt: skip
    emit("real_photos_faces_found", found / len(photos), "share of photos", n=len(photos), **extra)
    emit(
        "real_photos_unmasked_not_wear",
        float((unmasked["mask"] == "not_wear").mean()),
        "share of photos",
        baseline=1 / 3,
        n=len(unmasked),
        **extra,
    )
    if len(painted_rows):
        emit(
            "real_photos_masked_wear",
            float((painted_rows["mask"] == "wear").mean()),
            "share of photos",
            baseline=1 / 3,
            n=len(painted_rows),
            **extra,
        )
        emit("real_photos_masked_vs_unmasked_confidence", float(painted_rows["confidence"].mean()), "mean confidence",
             baseline=float(unmasked["confidence"].mean()), n=len(painted_rows))  # fmt: skip


if __name__ == "__main__":
    main()
