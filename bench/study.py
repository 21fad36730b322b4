"""The original's story, measured: does each dataset variant, and the ensemble, beat the raw labels — across seeds?

    python bench/study.py [--people 480] [--eval-people 60] [--seeds 0 1 2] [--preset lite0] [--device auto] [--work DIR]

One synthetic dataset (its data seed fixed, so every arm sees the same training and validation people and the same
fresh evaluation set), cropped once (bench/pipeline.py --stage data); then, for each seed, the four variant models
and the ensemble trained from it (bench/pipeline.py --stage train --train-seed S) and scored on the evaluation set
against the synthetic ground truth. Reports, per arm, mean ± sd over the seeds of the evaluation macro F1 and of the
F1 of the rare 60+ age group, and paired comparisons (same seed, same people): relabeled, cleaned and generated
against raw, and the soft vote of every member against the best member (the member with the best validation score
in that seed, scored on the evaluation set). Every arm is reported, the ones that lose included.
Prints JSON figures (bench/common.py) and, with --markdown, writes the table the README quotes.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import pipeline  # noqa: E402
from common import emit  # noqa: E402

from maskops.variants import model_name  # noqa: E402

ARMS = ("raw_model", "relabeled_model", "cleaned_model", "generated_model", "soft_vote", "fitted_vote", "ensemble")
PAIRS = (
    ("relabeled_model", "raw_model"),
    ("cleaned_model", "raw_model"),
    ("generated_model", "raw_model"),
    ("soft_vote", "best_member"),
    ("fitted_vote", "soft_vote"),
)


def run_seeds(args: argparse.Namespace, work: Path, partial: dict) -> list[dict]:
    """The data stage once (and label_issues on it), then the training stage per seed (each printed by pipeline.main,
    kept quiet here). `partial` gains each result as it comes and is saved to --json, so a long study stopped
    half-way keeps its finished seeds."""
    common = ["--people", str(args.people), "--eval-people", str(args.eval_people), "--seed", str(args.data_seed),
              "--device", args.device, "--work", str(work), *args.pipeline_args]  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        pipeline.main([*common, "--stage", "data"])
    if args.label_issues:
        partial["label_issues"] = pipeline.judge_labels(
            work, str(pipeline.resolve_device(args.device)), settings=pipeline.label_settings(args)
        )
        _save(args, partial)
    runs = partial.setdefault("runs", [])
    for seed in args.seeds:
        with contextlib.redirect_stdout(io.StringIO()):
            result = pipeline.main([*common, "--stage", "train", "--preset", args.preset, "--train-seed", str(seed)])
        print(f"[study] seed {seed}: {json.dumps(result['evaluation_macro_f1'])}", file=sys.stderr, flush=True)
        runs.append(result)
        _save(args, partial)
    return runs


def _save(args: argparse.Namespace, result: dict) -> None:
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


def arm_scores(run: dict, metric: str) -> dict[str, float]:
    """Every arm's evaluation score in one seed's run, plus best_member: the member the validation people chose."""
    scores = dict(run[f"evaluation_{metric}"])
    best = max(run["members"], key=lambda v: run["members"][v]["val_macro_f1"])
    return scores | {"best_member": scores[model_name(best)]}


def summarize(runs: list[dict]) -> dict:
    """mean ± sd per arm and paired differences, for macro F1 and the 60+ group's F1."""
    out: dict = {"seeds": len(runs), "arms": {}, "paired": {}}
    for metric in ("macro_f1", "old_f1"):
        per_seed = [arm_scores(r, metric) for r in runs]
        for arm in (*ARMS, "best_member"):
            values = [s[arm] for s in per_seed if s[arm] is not None]  # None: undefined (nobody 60+ in the evaluation set)
            out["arms"].setdefault(arm, {})[metric] = {"mean": _mean(values), "sd": _sd(values), "values": values}
        for a, b in PAIRS:
            diffs = [s[a] - s[b] for s in per_seed if s[a] is not None and s[b] is not None]
            sd = _sd(diffs)
            out["paired"].setdefault(f"{a} vs {b}", {})[metric] = {
                "mean_difference": _mean(diffs), "sd": sd, "wins": sum(d > 0 for d in diffs), "ties": sum(d == 0 for d in diffs),
                "n": len(diffs), "t": statistics.fmean(diffs) / (sd / len(diffs) ** 0.5) if sd > 0 else None, "differences": diffs,
            }  # fmt: skip
    return out


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _pm(figure: dict, key: str, fmt: str = ".3f") -> str:
    return "n/a" if figure[key] is None else f"{figure[key]:{fmt}} ± {figure['sd']:.3f}"


def markdown(summary: dict, args: argparse.Namespace, machine: str, judged: dict | None = None) -> str:
    lines = [f"{args.people} training people, {args.eval_people} evaluation people, preset `{args.preset}`, seeds {args.seeds}, {machine}",
             "", "| arm | evaluation macro F1 (mean ± sd) | 60+ F1 (mean ± sd) |", "| --- | --- | --- |"]  # fmt: skip
    for arm, m in summary["arms"].items():
        lines.append(f"| {arm} | {_pm(m['macro_f1'], 'mean')} | {_pm(m['old_f1'], 'mean')} |")
    lines += [
        "",
        "| paired (same seed) | macro F1 difference (mean ± sd, wins/n) | 60+ F1 difference (mean ± sd, wins/n) |",
        "| --- | --- | --- |",
    ]
    for pair, m in summary["paired"].items():
        cells = [f"{_pm(m[k], 'mean_difference', '+.3f')} ({m[k]['wins']}/{m[k]['n']})" for k in ("macro_f1", "old_f1")]
        lines.append(f"| {pair} | {cells[0]} | {cells[1]} |")
    if judged:
        lines += ["", "| label_issues: labels, field | wrong | flagged | precision | recall | recall in top 2 x wrong |",
                  "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
        for labels, report in judged.items():
            baseline = report.get("age_group_probabilities_only") or {}  # the age group judged like gender: the age judgement's baseline
            rows = [(field, r) for field, r in (report["against_ground_truth"] or {}).items()]
            rows += [
                (f"{field} (age groups by probabilities only)", baseline[field]) for field in ("age_group", "person") if field in baseline
            ]
            for field, r in rows:
                cells = [("n/a" if r[k] is None else f"{r[k]:.2f}") for k in ("precision", "recall", "recall_top_2k")]
                lines.append(f"| {labels}, {field} | {r['wrong']} of {r['items']} | {r['flagged']} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=480)
    parser.add_argument("--eval-people", type=int, default=60)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data-seed", type=int, default=7, help="the synthetic dataset's seed (every arm and seed shares it)")
    parser.add_argument("--preset", default="lite0")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--work", type=Path, help="working folder (default: pipeline.py's, by size and data seed)")
    parser.add_argument("--json", type=Path, help="also write the summary and every run here")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    parser.add_argument(
        "--no-label-issues",
        dest="label_issues",
        action="store_false",
        help="skip label_issues on the dataset's raw labels (every injected error) and relabeled ones (what the demo review left)",
    )
    parser.add_argument(
        "--label-method",
        choices=pipeline.METHODS,
        default=pipeline.LabelIssuesConfig.method,
        help="label_issues' out-of-fold models (the asset's `method`)",
    )
    parser.add_argument(
        "--label-epochs", type=int, help="--label-method train: epochs per out-of-fold model (default: the label_issues asset's)"
    )
    args, args.pipeline_args = parser.parse_known_args(argv)  # the rest goes to pipeline.py (--epochs, --workers, --no-background, ...)
    from maskops.settings import Settings

    work = args.work or Settings.from_env().home / "bench" / f"pipeline-{args.people}-{args.eval_people}-{args.data_seed}"
    result: dict = {"people": args.people, "seeds": args.seeds, "preset": args.preset}
    runs = run_seeds(args, work, result)
    summary = summarize(runs)
    machine = runs[0]["machine"]
    for arm, m in summary["arms"].items():
        emit(f"study_{arm}_macro_f1", m["macro_f1"]["mean"], "macro F1 (mean over seeds)", n=summary["seeds"],
             sd=round(m["macro_f1"]["sd"], 4), old_f1=m["old_f1"]["mean"], old_f1_sd=round(m["old_f1"]["sd"], 4), people=args.people)  # fmt: skip
    for pair, m in summary["paired"].items():
        name = "study_" + pair.replace("_model", "").replace(" vs ", "_vs_")
        emit(f"{name}_macro_f1_difference", m["macro_f1"]["mean_difference"], "macro F1 difference (paired mean)", n=m["macro_f1"]["n"],
             sd=round(m["macro_f1"]["sd"], 4), wins=m["macro_f1"]["wins"], old_f1_difference=m["old_f1"]["mean_difference"],
             old_f1_wins=m["old_f1"]["wins"], people=args.people)  # fmt: skip
    for labels, judged in result.get("label_issues", {}).items():
        groups_only = judged.get("age_group_probabilities_only") or {}
        for field, r in (judged["against_ground_truth"] or {}).items():
            if r["wrong"]:  # baseline: what a random ranking finds within the top 2 x wrong
                emit(f"study_label_issues_{labels}_recall_top_2k_{field}", r["recall_top_2k"], "share of wrong",
                     baseline=min(1.0, 2 * r["wrong"] / r["items"]), n=r["wrong"], people=args.people, precision=r["precision"],
                     recall=r["recall"], flagged=r["flagged"], target=">= 0.8 (at >= 480 people)" if field == "person" else None,
                     age_groups_by_probabilities_only=groups_only.get(field))  # fmt: skip
    result |= {"summary": summary, "machine": machine}
    _save(args, result)
    if args.markdown:
        args.markdown.write_text(markdown(summary, args, machine, result.get("label_issues")))
    return result


if __name__ == "__main__":
    main()
