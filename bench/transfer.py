"""What carries a model trained on drawn people to real photographs? One member per lever, asked the real photos.

    python bench/pipeline.py --stage data --people 480 --eval-people 60   # or a bench/study.py run: its --work folder
    python bench/transfer.py --work DIR [--people 160] [--arms base,grey,grey_blur,frozen] [--faces 60]

Each arm trains the relabeled member (the `demo` preset: pretrained EfficientNet-Lite0) on the first --people
training people of a bench/pipeline.py data folder, with one change of the training settings (the lever), then:
- serves it exactly as a registered champion would (tracking.ensemble_model: MTCNN, background removal and the crop
  recipe of its training crops) on the real photographs of bench/real_photos.py — scikit-image's `astronaut` and
  `camera` and faces of `lfw_subset`, unmasked and with a mask painted by the generator; none ever trained on;
- scores the folder's fresh synthetic evaluation people (macro F1 against the ground truth), the price of the lever.
Figures per arm: transfer_<arm>_unmasked_not_wear (share of unmasked real photos called "not_wear"; baseline: the
`base` arm), transfer_<arm>_masked_wear, transfer_<arm>_synthetic_macro_f1.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import emit  # noqa: E402
from real_photos import jpeg, painted, real_photos  # noqa: E402

ARMS: dict[str, dict] = {
    "base": {},
    "grey": {"augment_grey": 0.5},
    "grey_blur": {"augment_grey": 0.5, "augment_blur": 0.5},
    "grey_blur_jitter": {"augment_grey": 0.5, "augment_blur": 0.5, "augment_jitter": 0.5},
    "frozen": {"freeze_stages": 5},  # only the last stages and the heads learn: the ImageNet features stay as they are
    "grey_frozen": {"augment_grey": 0.5, "augment_blur": 0.5, "freeze_stages": 5},
    "grey_lowres": {"augment_grey": 0.5, "augment_lowres": 0.5},
    # mask-only real faces, as `maskops synth` writes them under mask_only/ (maskops.synth.real_faces): the last
    # --real-faces faces of lfw_subset (never among the measured ones), each unmasked ("not_wear"), with a mask painted on
    # ("wear") and one painted below the nose or on the chin ("incorrect"), labelled with the mask state alone
    "real_mask": {"real_faces": True},
    "real_mask_grey": {"augment_grey": 0.5, "real_faces": True},
}


def subset(crops: pd.DataFrame, split: pd.DataFrame, people: int) -> pd.DataFrame:
    """The first `people` training people of the split, and every validation person."""
    train = sorted(split.loc[split["role"] == "train", "profile_id"])[:people]
    keep = set(train) | set(split.loc[split["role"] != "train", "profile_id"])
    return crops[crops["profile_id"].isin(keep)]


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="a bench/pipeline.py --stage data folder (crops/, split.parquet, data/)")
    parser.add_argument("--people", type=int, default=160, help="training people per arm")
    parser.add_argument("--arms", default="base,grey,grey_blur,frozen", help=f"comma-separated, of {', '.join(ARMS)}")
    parser.add_argument("--faces", type=int, default=60, help="faces of lfw_subset measured on (the first ones)")
    parser.add_argument(
        "--real-faces", type=int, default=40, help="faces of lfw_subset the real_mask arms train on (the last ones, at most 40)"
    )
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, help="training seed (default: the preset's)")
    args = parser.parse_args(argv)
    import torch

    from maskops.background import fetch_u2netp
    from maskops.cpus import torch_threads
    from maskops.crop import CropRecipe
    from maskops.data import decode_all, training_data, with_crops
    from maskops.labels import mask_only_label
    from maskops.metrics import evaluate
    from maskops.settings import Settings
    from maskops.store import ImageSource, ImageStore
    from maskops.synth.people import TRUTH_DIR
    from maskops.synth.real_faces import lfw_faces, mask_only_photos, training_faces
    from maskops.train import PRESETS, predict, resolve_device, train_model
    from tracking.ensemble_model import MaskopsEnsemble

    torch_threads()  # the process's CPU budget (maskops.cpus: MASKOPS_THREADS, OMP_NUM_THREADS, affinity, quota)
    device = str(resolve_device(args.device))
    open_rgb = ImageSource(args.work / "data", ImageStore(args.work / "images")).open_rgb
    split = pd.read_parquet(args.work / "split.parquet")
    relabeled = subset(pd.read_parquet(args.work / "crops" / "relabeled.parquet"), split, args.people)
    eval_rows = with_crops(pd.read_parquet(args.work / "crops" / "eval.parquet"))
    answers = pd.read_csv(args.work / "data" / TRUTH_DIR / "eval_answers.csv", dtype={"ImageID": str}).set_index("ImageID")
    truth = answers.loc[eval_rows["stem"], "ans"].to_numpy()
    photos = real_photos(args.faces)
    masked, _ = painted(photos)
    inputs = {
        kind: pd.DataFrame({"image": [jpeg(p) for p in pictures.values()]}) for kind, pictures in (("unmasked", photos), ("masked", masked))
    }
    out, decoded = [], {}  # image side -> (training data, evaluation images): decoded once for every arm of that size
    for arm in args.arms.split(","):
        changes = {k: v for k, v in ARMS[arm].items() if k != "real_faces"}
        cfg = replace(
            PRESETS[args.preset],
            device=device,
            **changes,
            **({"epochs": args.epochs} if args.epochs else {}),
            **({"seed": args.seed} if args.seed is not None else {}),
        )
        if cfg.image_size not in decoded:
            decoded[cfg.image_size] = (training_data(relabeled, relabeled, split, open_rgb, cfg.image_size),
                                       decode_all(list(eval_rows["crop_path"]), open_rgb, cfg.image_size))  # fmt: skip
        data, eval_images = decoded[cfg.image_size]
        background = (
            fetch_u2netp(Settings.from_env().models).absolute() if CropRecipe.from_json(data.crop_recipe).config.remove_background else None
        )
        cropping = {"weights": [1.0], "crop_recipe": data.crop_recipe, "background_model_name": "u2net_custom"}
        train_images, train_labels = data.train_images, data.train_labels
        if ARMS[arm].get("real_faces"):  # cropped exactly as served photos are (the champion's crop pipeline)
            extra = mask_only_photos(lfw_faces(training_faces(args.real_faces)))
            crops = MaskopsEnsemble().setup(cropping, [], background).crops([p for _, p, _ in extra])
            train_images = torch.cat([train_images, decode_all(crops, lambda c: c, cfg.image_size)])
            train_labels = np.concatenate([train_labels, [mask_only_label(m) for _, _, m in extra]])
        result = train_model(train_images, train_labels, data.val_images, data.val_labels, cfg)
        synthetic = evaluate(truth, predict(result.model, eval_images))
        served = MaskopsEnsemble().setup(cropping, [(cfg.image_size, result.model.eval())], background)
        calls = {kind: served.predict(None, frame)["mask"] for kind, frame in inputs.items()}
        row = {"arm": arm, "changes": ARMS[arm], "seed": cfg.seed, "train_people": int(data.train["profile_id"].nunique()),
               "unmasked_not_wear": float((calls["unmasked"] == "not_wear").mean()), "masked_wear": float((calls["masked"] == "wear").mean()),
               "synthetic_macro_f1": round(float(synthetic["macro_f1"]), 4), "synthetic_mask_f1": round(float(synthetic["mask_f1"]), 4),
               "calls_unmasked": calls["unmasked"].value_counts().to_dict(),
               # the two photos framed like nothing trained on (the LFW faces share the mask-only faces' framing)
               "calls_samples": {f"{name} {kind}": calls[kind].iloc[list(pictures).index(name)] for kind, pictures in
                                 (("unmasked", photos), ("masked", masked)) for name in ("astronaut", "camera") if name in pictures}}  # fmt: skip
        print(f"[transfer] {row}", file=sys.stderr, flush=True)
        out.append(row)
    base = next((r for r in out if r["arm"] == "base"), None)
    for r in out:
        extra = {"changes": r["changes"], "train_people": r["train_people"], "calls_unmasked": r["calls_unmasked"], "photos": len(photos)}
        for figure in ("unmasked_not_wear", "masked_wear", "synthetic_macro_f1"):
            emit(f"transfer_{r['arm']}_{figure}", r[figure], "share of photos" if "wear" in figure else "macro F1",
                 baseline=base[figure] if base and r is not base else None, n=len(photos) if "wear" in figure else len(truth), **extra)  # fmt: skip
    return out


if __name__ == "__main__":
    main()
