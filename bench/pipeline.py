"""The whole recipe as a plain script: the same domain functions as the Dagster assets, no Dagster, MLflow or GX.

    python bench/pipeline.py [--people 64] [--eval-people 10] [--device auto] [--stage all|data|train] [--work DIR]

synthesize (with the demo's mask-only real faces) -> demo reviewer -> scan -> relabeled, cleaned, split, generated -> crops
(raw, generated and mask-only images, once each: the variants share them through the image store) -> four models -> soft-voting ensemble -> the evaluation set
scored against the synthetic ground truth. Prints one JSON object: a per-stage time table (seconds), the scores and
the sizes. What it is for:
- the full competition size on one GPU machine (bench/gpu_check.py runs it with --people 2700 --eval-people 258);
- the baseline of the orchestration-overhead figure (bench/orchestration.py: the Dagster demo against this);
- the demo's scaling (bench/orchestration.py --scales).
`--stage data` stops after the crops and `--stage train` starts from them (same --work), so the full size can run as
two commands; each stage skips what its folder already holds (the image store is content-addressed).
It needs only the domain layer's packages (torch, timm, pandas, onnxruntime, facenet-pytorch, onnx2torch, ...).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from maskops.background import BackgroundRemover, fetch_u2netp
from maskops.cleaning import CleaningRules, clean, read_exclusions
from maskops.corrections import apply_corrections, read_corrections
from maskops.cpus import worker_count
from maskops.crop import CropConfig, Cropper, CropRecipe, crop_summary
from maskops.faces import DetectorConfig, FaceDetector, Lazy
from maskops.files import file_digest
from maskops.generate import GenerateConfig, add_generated, generate, generation_sources, pending_generation, plan_generation
from maskops.label_issues import METHODS, LabelIssuesConfig
from maskops.layout import scan_competition
from maskops.settings import Settings
from maskops.splits import SplitConfig, assign_split, make_split
from maskops.store import ImageSource, ImageStore
from maskops.synth.people import TRUTH_DIR, SynthConfig, synthesize
from maskops.synth.real_faces import DEMO_MASK_ONLY_FACES
from maskops.synth.reviewer import demo_review
from maskops.train import resolve_device
from maskops.variants import VARIANTS, model_name


class Stages:
    """Wall time of each named stage, in order."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 2)
            print(f"[pipeline] {name}: {self.seconds[name]:.1f}s", file=sys.stderr, flush=True)


def exit_with_parent(parent: int, every: float = 0.5) -> None:
    """A worker process's initializer: end the process once `parent` is gone (killed or crashed), instead of going on
    cropping for nobody as an orphan. A pool's workers outlive a SIGKILLed parent otherwise."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


@functools.cache  # a shard process's models, built once a process and kept between its jobs
def _worker_detector(device: str, threads: int) -> Lazy:
    return Lazy(lambda: FaceDetector(DetectorConfig(), device=device, threads=threads))


@functools.cache
def _worker_remover(model: Path, resolution: int, device: str, threads: int) -> BackgroundRemover:
    return BackgroundRemover(model.parent, "u2net_custom", model, threads=threads, resolution=resolution, device=device)


def _shard_worker(job: tuple) -> int:
    """One process's share of the crop or generate work, written into the shared content-addressed store (atomic
    writes); the serial pass after it finds every image there and only assembles the records."""
    kind, rows, root, store_root, device, threads, options = job
    import torch

    torch.set_num_threads(threads)
    store = ImageStore(store_root)
    open_rgb = ImageSource(root, store).open_rgb
    detector = _worker_detector(device, threads)
    if kind == "crop":
        cfg, model = options
        remover = _worker_remover(model, cfg.background_resolution, device, threads) if model else None
        Cropper(CropRecipe(cfg, DetectorConfig(), file_digest(model) if model else ""), store, remover, detector).run(rows, open_rgb)
    else:
        _, sources, settings = options  # this process's share of the plan is `rows`
        generate(rows, sources, open_rgb, store, detector, settings, None, DetectorConfig())
    return len(rows)


class Shards:
    """`workers` processes (spawned: CUDA-safe) that share out the crop and generate work, each with its own models on
    `device`. Started on first use and kept until closed, so that a data stage pays the processes' start (importing
    torch, torchvision, the face detector, the background model: seconds each) once, not once per manifest."""

    def __init__(self, workers: int, root: Path, store: ImageStore, device: str) -> None:
        self.workers, self.root, self.store, self.device = workers, root, store, device
        self.threads = max(1, worker_count() // max(1, workers))  # the CPU budget (maskops.cpus), shared out
        self.pool = None

    def run(self, kind: str, rows: pd.DataFrame, options: tuple) -> None:
        """`rows` split over the processes; returns once every share is in the store."""
        if self.workers <= 1 or len(rows) < self.workers:  # every process gets at least one row
            return
        if self.pool is None:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"), initializer=exit_with_parent,
                                            initargs=(os.getpid(),))  # fmt: skip
        shards = [rows.iloc[k :: self.workers] for k in range(self.workers)]
        jobs = [(kind, shard, self.root, str(self.store.root), self.device, self.threads, options) for shard in shards]
        list(self.pool.map(_shard_worker, jobs))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None

    def __enter__(self) -> Shards:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def in_processes(kind: str, rows: pd.DataFrame, workers: int, root: Path, store: ImageStore, device: str, options: tuple) -> None:
    """Split `rows` over `workers` processes started for this call alone (see Shards)."""
    with Shards(workers, root, store, device) as shards:
        shards.run(kind, rows, options)


def data_stage(args: argparse.Namespace, work: Path, device: str, stages: Stages) -> dict:
    """Everything up to the crops; writes <work>/crops/<variant>.parquet, split.parquet and eval crops."""
    root, labels, store = work / "data", work / "labels", ImageStore(work / "images")
    with Shards(args.workers, root, store, device) as shards:  # started on first use, closed with the stage
        with stages("synthesize"):
            synth = SynthConfig(profiles=args.people, eval_profiles=args.eval_people, seed=args.seed, mask_only_faces=args.mask_only_faces)
            synthesize(root, synth, workers=worker_count())
        with stages("review"):
            demo_review(root, labels, seed=args.seed)
        with stages("scan"):
            layout = scan_competition(root)
        open_rgb = ImageSource(root, store).open_rgb
        with stages("variants"):
            raw = layout.train
            relabeled = apply_corrections(raw, read_corrections(labels / "corrections.csv", raw))
            relabeled = relabeled.assign(source_profile_id=relabeled["profile_id"], generator="")
            split, _ = make_split(relabeled, SplitConfig())
            cleaned, _ = clean(relabeled, read_exclusions(labels / "exclusions.csv", relabeled), CleaningRules())
        detector = Lazy(lambda: FaceDetector(DetectorConfig(), device=device))
        with stages("generate"):
            settings = GenerateConfig()
            train = assign_split(cleaned, split).query("role == 'train'")
            plan, sources = plan_generation(train.drop_duplicates("profile_id"), settings), generation_sources(train)
            shards.run("generate", pending_generation(plan, sources, store, settings, DetectorConfig()), (None, sources, settings))
            made, _ = generate(plan, sources, open_rgb, store, detector, settings, None, DetectorConfig())
            generated = add_generated(cleaned, made)
        crop_cfg = CropConfig(remove_background=not args.no_background, batch_size=args.crop_batch)
        model = None
        if crop_cfg.remove_background:
            model = fetch_u2netp(Settings.from_env().models).absolute()
            crop_cfg = replace(crop_cfg, background_model="u2net_custom")
        remover = Lazy(
            lambda: BackgroundRemover(model.parent, "u2net_custom", model, resolution=crop_cfg.background_resolution, device=device)
        )
        cropper = Cropper(CropRecipe(crop_cfg, DetectorConfig(), file_digest(model) if model else ""), store, remover if model else None,
                          detector)  # fmt: skip
        manifests = {"raw": raw, "relabeled": relabeled, "cleaned": cleaned, "generated": generated, "eval": layout.eval,
                     "mask_only": layout.mask_only}  # fmt: skip
        out = work / "crops"
        out.mkdir(exist_ok=True)
        split.to_parquet(work / "split.parquet")
        names = ("raw", "relabeled", "cleaned", "eval", "generated", "mask_only")  # relabeled and cleaned reuse raw's crops
        readable, counts, claimed, new = {}, {}, set(), []
        for name in names:  # what each manifest adds to the store (the first to hold an image crops it)
            manifest = manifests[name]
            readable[name] = manifest[manifest["readable"]]
            unique = readable[name].drop_duplicates("content_hash")
            fresh = unique[unique["content_hash"].map(lambda h: h not in claimed and not store.has(cropper.key(h))).astype(bool)]
            claimed.update(fresh["content_hash"])
            new.append(fresh[["content_hash", "path"]])
            counts[name] = {"images": len(manifest), "cropped": len(fresh), "reused": len(unique) - len(fresh)}
        with stages("crop"):  # every manifest's new images in one sharded pass, then each manifest's records
            shards.run("crop", pd.concat(new, ignore_index=True), (crop_cfg, model))
            for name in names:
                records, _ = cropper.run(readable[name], open_rgb)
                crops, _, _ = crop_summary(manifests[name], records, len(readable[name]))
                crops.to_parquet(out / f"{name}.parquet")
        return {"images": counts}


def train_stage(args: argparse.Namespace, work: Path, device: str, stages: Stages) -> dict:
    """Four models, the ensemble, and the evaluation set scored against the ground truth."""
    from maskops.cpus import torch_threads
    from maskops.data import decode_all, training_data, with_crops
    from maskops.ensemble import EnsembleConfig, choose_serving, evaluate_ensemble, soft_vote
    from maskops.evaluation import evaluate_model
    from maskops.metrics import evaluate, old_f1
    from maskops.train import PRESETS, predict, train_model

    torch_threads()  # the process's CPU budget (maskops.cpus: MASKOPS_THREADS, OMP_NUM_THREADS, affinity, quota)
    store = ImageStore(work / "images")
    open_rgb = ImageSource(work / "data", store).open_rgb
    crops = {name: pd.read_parquet(work / "crops" / f"{name}.parquet") for name in (*VARIANTS, "eval")}
    mask_only = work / "crops" / "mask_only.parquet"  # a data folder made before mask-only photos has none
    mask_only_crops = pd.read_parquet(mask_only) if mask_only.is_file() and not args.no_mask_only else None
    split = pd.read_parquet(work / "split.parquet")
    cfg = replace(PRESETS[args.preset], device=device, **({"epochs": args.epochs} if args.epochs else {}),
                  **({"backbone": args.backbone} if args.backbone else {}), **({"image_size": args.image_size} if args.image_size else {}),
                  **({"batch_size": args.batch_size} if args.batch_size else {}), compile=args.compile,
                  **({"seed": args.train_seed} if args.train_seed is not None else {}))  # fmt: skip
    members, val_probs, eval_probs, members_meta = [], [], [], {}
    eval_rows = with_crops(crops["eval"])
    with stages("decode"):
        eval_images = decode_all(list(eval_rows["crop_path"]), open_rgb, cfg.image_size, workers=worker_count())
    y_val, val_people = None, None
    for variant in VARIANTS:
        with stages("decode"):
            data = training_data(crops[variant], crops["relabeled"], split, open_rgb, cfg.image_size, mask_only_crops)
        with stages(f"train/{variant}"):
            result = train_model(data.train_images, data.train_labels, data.val_images, data.val_labels, cfg)
        if args.extras:
            with stages("evaluation"):
                evaluate_model(result, data.val_images, data.val_labels, model_name(variant), 16)
        with stages("predict"):
            eval_probs.append(predict(result.model, eval_images))
        y_val, val_people = data.val_labels, list(data.val["profile_id"])
        members.append(model_name(variant))
        val_probs.append(result.val_probabilities)
        members_meta[variant] = {"train_images": len(data.train), "mask_only_images": data.mask_only_images, "val_macro_f1": round(result.val_metrics["macro_f1"], 4),
                                 "epochs": len(result.history), "train_images_per_second": round(result.train_images_per_second, 1)}  # fmt: skip
    with stages("ensemble"):
        how = EnsembleConfig()  # the ensemble asset's defaults
        evaluation = evaluate_ensemble(members, val_probs, y_val, how.weights, groups=val_people, temperature=how.temperature)
        serving = choose_serving(evaluation, how.member_margin, how.member_confidence)  # as the asset: the vote only when it earned it
        voted = soft_vote([eval_probs[i] for i in serving.members], serving.weights, serving.temperatures)
        soft = soft_vote(eval_probs, evaluation.weights, evaluation.temperatures)
        fitted = evaluate_ensemble(members, val_probs, y_val, "fitted", groups=val_people)  # weights fitted on the validation people
        fitted_vote = soft_vote(eval_probs, fitted.weights)
        if args.extras:
            _ = evaluation.figures  # rendered, as the ensemble asset does
    if args.extras:
        with stages("label_issues"):
            suspects = label_issues(crops["relabeled"], split, open_rgb, device, work / "data", label_settings(args))[0]
    answers = pd.read_csv(work / "data" / TRUTH_DIR / "eval_answers.csv", dtype={"ImageID": str}).set_index("ImageID")
    truth = answers.loc[eval_rows["stem"], "ans"].to_numpy()
    arms = dict(zip([*members, "soft_vote", "fitted_vote", "ensemble"], [*eval_probs, soft, fitted_vote, voted], strict=True))
    scored = {name: evaluate(truth, p) for name, p in arms.items()}
    scores = {name: round(m["macro_f1"], 4) for name, m in scored.items()}
    return {
        "config": {
            "backbone": cfg.backbone,
            "image_size": cfg.image_size,
            "epochs": cfg.epochs,
            "batch_size": cfg.batch_size,
            "seed": cfg.seed,
        },
        "members": members_meta,
        "validation_macro_f1": {
            "soft_vote": round(serving.soft_vote_score, 4),
            "served": round(serving.score, 4),
            "fitted_vote_cross_fitted": round(fitted.ensemble_metrics["macro_f1"], 4),
        },
        "fitted_weights": dict(zip(members, (round(w, 3) for w in fitted.weights), strict=True)),
        "serving": serving.reason,
        "evaluation_macro_f1": scores,  # ensemble: what the rule serves; soft_vote: the vote of every member
        "evaluation_old_f1": {name: _round(old_f1(truth, p)) for name, p in arms.items()},
        "evaluation_mask_f1": {name: round(m["mask_f1"], 4) for name, m in scored.items()},
        "evaluation_images": len(eval_rows),
        **({"label_issues": len(suspects)} if args.extras else {}),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def label_settings(args: argparse.Namespace):
    """The label_issues asset's settings (maskops.label_issues.LabelIssuesConfig) with --label-method and --label-epochs."""
    return LabelIssuesConfig(method=args.label_method, **({} if args.label_epochs is None else {"epochs": args.label_epochs}))


def label_issues(
    crops: pd.DataFrame, split: pd.DataFrame, open_rgb, device: str, root: Path, settings=None
) -> tuple[pd.DataFrame, dict | None, dict | None]:
    """The label_issues asset's work (`settings`: a LabelIssuesConfig, default the asset's): out-of-fold probabilities
    and ages of the relabeled crops, then the suspects, and (for a synthetic dataset at `root`) how well the ranking
    finds the label errors still there — also with the age group judged on its probabilities alone (`judge_age:
    false`, same models), the baseline of the age judgement."""
    from maskops.data import with_crops
    from maskops.label_issues import flagged, opinions, rank_labels, score_against_truth
    from maskops.synth.truth import remaining_errors

    usable = assign_split(with_crops(crops), split).reset_index(drop=True)
    predictions = opinions(usable, open_rgb, settings or LabelIssuesConfig(), device)
    ranked = rank_labels(usable, predictions.probabilities, predictions.age)
    wrong = remaining_errors(root, usable)
    if not wrong:
        return flagged(ranked), None, None
    return flagged(ranked), score_against_truth(ranked, wrong), score_against_truth(rank_labels(usable, predictions.probabilities), wrong)


def judge_labels(work: Path, device: str, labels: tuple[str, ...] = ("raw", "relabeled"), settings=None) -> dict:
    """label_issues on a finished data stage's crops, once per set of labels: `raw` holds every injected error (what the
    issue's recall target counts), `relabeled` what the demo reviewer left (what the label_issues asset judges).
    `settings`: a LabelIssuesConfig (default: the asset's)."""
    open_rgb = ImageSource(work / "data", ImageStore(work / "images")).open_rgb
    split, out = pd.read_parquet(work / "split.parquet"), {}
    for name in labels:
        start = time.perf_counter()
        suspects, truth, groups_only = label_issues(pd.read_parquet(work / "crops" / f"{name}.parquet"), split, open_rgb, device,
                                                    work / "data", settings)  # fmt: skip
        out[name] = {"flagged": len(suspects), "against_ground_truth": truth, "age_group_probabilities_only": groups_only,
                     "seconds": round(time.perf_counter() - start, 1)}  # fmt: skip
        print(f"[pipeline] label_issues on {name} labels: {json.dumps(out[name])}", file=sys.stderr, flush=True)
    return out


def machine(device: str) -> str:
    name = f"{platform.machine()} {os.cpu_count()} cpu"
    if device.startswith("cuda"):
        import torch

        name += f", {torch.cuda.get_device_name()}"
    return name


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=64, help="training people (7 photos each); the competition has 2700")
    parser.add_argument("--eval-people", type=int, default=10, help="evaluation people (7 photos each); 258 gives the competition's 1,800")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--stage",
        choices=("all", "data", "train", "labels"),
        default="all",
        help="labels: label_issues on a data stage's crops, scored against the synthetic ground truth",
    )
    parser.add_argument("--labels", default="raw,relabeled", help="--stage labels: which labels to judge (raw holds every injected error)")
    parser.add_argument(
        "--label-method", choices=METHODS, default=LabelIssuesConfig.method,
        help="--stage labels and --extras: label_issues' out-of-fold models (the asset's `method`; probe needs the provisioned "
             "efficientnet_lite0, `maskops fetch-models`)",
    )  # fmt: skip
    parser.add_argument(
        "--label-epochs", type=int, help="--label-method train: epochs per out-of-fold model (default: the label_issues asset's)"
    )
    parser.add_argument("--work", type=Path, help="working folder (default: a folder under $MASKOPS_HOME/bench)")
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--backbone")
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--train-seed", type=int, help="the models' seed (default: the preset's); the data and split keep --seed")
    parser.add_argument("--compile", action="store_true", help="torch.compile the training step")
    parser.add_argument("--crop-batch", type=int, default=CropConfig().batch_size, help="images per background/MTCNN batch")
    parser.add_argument("--workers", type=int, default=1, help="processes for the crop and generate stages (each with its own models)")
    parser.add_argument("--no-background", action="store_true", help="skip background removal (tests)")
    parser.add_argument(
        "--mask-only-faces",
        type=int,
        default=DEMO_MASK_ONLY_FACES,
        help="real faces under mask_only/ (as the demo: unmasked and painted, mask state only); 0 for none",
    )
    parser.add_argument("--no-mask-only", action="store_true", help="train without the data folder's mask-only photos")
    parser.add_argument(
        "--extras",
        action="store_true",
        help="also the rest of the Dagster job's domain work: evaluation figures and Grad-CAM, label issues",
    )
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    device = str(resolve_device(args.device))
    work = args.work or Settings.from_env().home / "bench" / f"pipeline-{args.people}-{args.eval_people}-{args.seed}"
    work.mkdir(parents=True, exist_ok=True)
    stages = Stages()
    result: dict = {"people": args.people, "eval_people": args.eval_people, "device": device, "machine": machine(device)}
    start = time.perf_counter()
    if args.stage in ("all", "data"):
        result |= data_stage(args, work, device, stages)
    if args.stage in ("all", "train"):
        result |= train_stage(args, work, device, stages)
    if args.stage == "labels":
        result["label_issues"] = judge_labels(work, device, tuple(args.labels.split(",")), label_settings(args))
    result |= {"stage": args.stage, "seconds": stages.seconds, "wall_seconds": round(time.perf_counter() - start, 2)}
    text = json.dumps(result, indent=1)
    print(text, flush=True)
    if args.json:
        args.json.write_text(text)
    return result


if __name__ == "__main__":
    main()
