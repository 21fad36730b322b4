"""Soft voting, promotion in a real (temporary) registry, and the ensemble end to end:
assets, submission, the registered pyfunc in a fresh process, and `maskops predict`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from maskops.ensemble import fit_weights, soft_vote
from maskops.layout import scan_competition
from maskops.splits import split_profiles


def test_soft_vote_averages_probabilities_not_logits():
    a = np.zeros((2, 18))
    a[0, 1], a[0, 2], a[1, 5] = 0.6, 0.4, 1.0
    b = np.zeros((2, 18))
    b[0, 2], b[1, 5], b[1, 6] = 1.0, 0.5, 0.5
    equal = soft_vote([a, b])
    assert equal[0, 1] == pytest.approx(0.3) and equal[0, 2] == pytest.approx(0.7) and equal.argmax(1).tolist() == [2, 5]
    weighted = soft_vote([a, b], [3, 1])
    assert weighted[0, 1] == pytest.approx(0.45) and weighted[0, 2] == pytest.approx(0.55)
    assert np.allclose(weighted.sum(1), 1)
    with pytest.raises(ValueError, match="one non-negative weight per member"):
        soft_vote([a, b], [1, -1])


def test_fitted_weights_prefer_the_better_member():
    y = np.arange(18).repeat(3)
    good = np.eye(18)[y] * 0.9 + 0.1 / 18
    bad = np.roll(good, 1, axis=1)
    weights, score = fit_weights([bad, good], y, step=0.25)
    assert weights[1] > weights[0] and score == pytest.approx(1.0)


def test_ensemble_evaluation_scores_every_member_on_the_same_people():
    from maskops.ensemble import evaluate_ensemble, fill_answers, validation_set_id

    y = np.arange(18).repeat(2)
    good = np.eye(18)[y] * 0.9 + 0.1 / 18
    noisy = np.roll(good, 1, axis=1)
    equal = evaluate_ensemble(["a_model", "b_model"], [good, noisy], y, "equal")
    assert list(equal.table["model"]) == ["a_model", "b_model", "ensemble"] and equal.weights == [1.0, 1.0]
    assert equal.member_metrics[0]["macro_f1"] == pytest.approx(1.0) and equal.member_metrics[1]["macro_f1"] == 0.0
    assert {m.sum() for m in equal.matrices.values()} == {len(y)}
    people = [f"p{i % 6}" for i in range(len(y))]
    fitted = evaluate_ensemble(["a_model", "b_model"], [good, noisy], y, "fitted", groups=people)
    assert fitted.weights[0] > fitted.weights[1] and fitted.ensemble_metrics["macro_f1"] == pytest.approx(1.0)
    assert fitted.scoring.startswith("cross-fitted") and equal.scoring == "nothing fitted"
    assert set(fitted.figures) == {"comparison_chart.png", "confusion_matrix.png", "confusion_matrices.png", "reliability_diagram.png"}
    assert list(fitted.calibration["model"]) == ["a_model", "b_model", "ensemble"] and "calibration.csv" in fitted.tables()
    with pytest.raises(ValueError, match="pass the items' person ids"):
        evaluate_ensemble(["a_model", "b_model"], [good, noisy], y, "fitted")
    assert all(png[:4] == b"\x89PNG" for png in fitted.figures.values())
    with pytest.raises(ValueError, match="weights must be one of"):
        evaluate_ensemble(["a_model"], [good], y, "best")
    table, missing, fallback = fill_answers(["c", "a", "b"], ["a", "b"], np.eye(18)[[4, 4]])
    assert list(table["ImageID"]) == ["c", "a", "b"] and list(table["ans"]) == [4, 4, 4] and missing == ["c"] and fallback == 4
    assert validation_set_id(["x", "y"], [1, 2]) == validation_set_id(["x", "y"], [1, 2]) != validation_set_id(["x", "y"], [1, 3])


def test_fitted_weights_and_temperatures_are_scored_on_people_they_were_not_fitted_on():
    from maskops.calibration import apply_temperature, fit_temperature, halves
    from maskops.ensemble import evaluate_ensemble

    rng = np.random.default_rng(0)
    y = rng.integers(0, 18, 240)
    people = [f"p{i // 6}" for i in range(len(y))]  # 40 people, 6 photos each
    members = [rng.dirichlet(np.full(18, 0.3), len(y)) for _ in range(3)]
    members[0][np.arange(len(y)), y] += 0.5  # one member knows something; the rest are noise
    members = [m / m.sum(axis=1, keepdims=True) for m in members]
    scored = evaluate_ensemble(["a_model", "b_model", "c_model"], members, y, "fitted", groups=people, temperature=True)
    half = halves(people)
    assert 100 <= (half == 0).sum() <= 140  # the people split in two, whole
    assert all(len({h for h, p in zip(half, people, strict=True) if p == person}) == 1 for person in set(people))
    for side in (0, 1):  # the vote on one half comes from temperatures and weights fitted on the other half only
        other, held = half != side, half == side
        temps = [fit_temperature(m[other], y[other]) for m in members]
        weights = fit_weights([apply_temperature(m[other], t) for m, t in zip(members, temps, strict=True)], y[other])[0]
        assert np.allclose(scored.probabilities[held], soft_vote([m[held] for m in members], weights, temps))
    assert scored.weights == fit_weights([apply_temperature(m, t) for m, t in zip(members, scored.temperatures, strict=True)], y)[0]


def test_calibration_error_and_temperature_scaling():
    from maskops.calibration import apply_temperature, expected_calibration_error, fit_temperature, reliability

    rng = np.random.default_rng(1)
    y = rng.integers(0, 18, 600)
    guess = np.where(rng.random(len(y)) < 0.5, y, (y + 1) % 18)  # right half of the time
    sure = np.full((len(y), 18), 0.01 / 17)
    sure[np.arange(len(y)), guess] = 0.99  # ...but 99% sure every time: over-confident
    assert expected_calibration_error(sure, y) == pytest.approx(0.49, abs=0.05)
    hot = fit_temperature(sure, y)
    assert hot > 1 and expected_calibration_error(apply_temperature(sure, hot), y) < 0.1
    assert (apply_temperature(sure, hot).argmax(1) == sure.argmax(1)).all() and np.allclose(apply_temperature(sure, 1.0), sure)
    timid = np.full((len(y), 18), 0.9 / 17)
    timid[np.arange(len(y)), y] = 0.1  # right every time, 10% sure: under-confident
    assert fit_temperature(timid, y) < 1 and expected_calibration_error(timid, y) == pytest.approx(0.9)
    table = reliability(sure, y, bins=10)
    assert table["count"].sum() == len(y) and table.loc[9, "accuracy"] == pytest.approx((guess == y).mean())


def test_the_soft_vote_serves_only_when_it_earns_it():
    """A vote worse than its best member is not what the champion serves: the best member alone is."""
    from maskops.ensemble import choose_serving, evaluate_ensemble

    y = np.repeat(np.arange(18), 4)
    good = np.eye(18)[y] * 0.9 + 0.1 / 18  # right on every image
    bad = np.roll(np.eye(18), 1, axis=1)[y] * 0.9 + 0.1 / 18  # wrong on every image
    evaluation = evaluate_ensemble(["a_model", "b_model", "c_model"], [bad, good, bad], y, "equal")
    assert evaluation.ensemble_metrics["macro_f1"] < 1.0
    alone = choose_serving(evaluation, margin=0.0)
    assert not alone.earned and alone.members == [1] and alone.weights == [1.0] and alone.score == pytest.approx(1.0)
    assert alone.temperatures == [evaluation.temperatures[1]] == [1.0]  # not scaled unless asked
    assert "b_model serves alone" in alone.reason and alone.soft_vote_score == pytest.approx(evaluation.ensemble_metrics["macro_f1"])
    generous = choose_serving(evaluation, margin=1.0)  # a margin that forgives the vote
    assert generous.earned and generous.members == [0, 1, 2] and generous.score == pytest.approx(evaluation.ensemble_metrics["macro_f1"])
    sure = choose_serving(evaluate_ensemble(["a_model", "b_model", "c_model"], [bad, good, bad], y, "equal", groups=[f"p{i % 12}" for i in range(len(y))]),
                          margin=0.0, confidence=0.9)  # fmt: skip
    assert not sure.earned and sure.member_wins == 1.0 and "in 100% of bootstrap resamples" in sure.reason  # a clear lead: the member


def test_the_fast_macro_f1_agrees_with_sklearn():
    from maskops.metrics import evaluate, macro_f1_fast

    rng = np.random.default_rng(3)
    for n in (1, 7, 200):
        y = rng.integers(0, 18, n).astype(np.int8)  # labels come as int8 from the manifests
        probs = rng.random((n, 18))
        assert macro_f1_fast(y, probs.argmax(1)) == pytest.approx(evaluate(y, probs)["macro_f1"])


def test_fitted_weights_are_those_sklearns_macro_f1_would_choose():
    """fit_weights scores its grid with the fast macro F1: same weights, same score as evaluate() (sklearn) would give."""
    import itertools

    from maskops.ensemble import fit_weights, soft_vote
    from maskops.metrics import evaluate

    rng = np.random.default_rng(5)
    y = rng.integers(0, 18, 60)
    members = [
        np.eye(18)[np.where(rng.random(60) < q, y, rng.integers(0, 18, 60))] * 0.6 + rng.random((60, 18)) * 0.4 for q in (0.7, 0.4, 0.2)
    ]
    weights, score = fit_weights(members, y, step=0.25)
    best, best_score = [1 / 3] * 3, evaluate(y, soft_vote(members))["macro_f1"]
    for a, b in itertools.product(range(5), repeat=2):
        if a + b <= 4:
            w = [a / 4, b / 4, (4 - a - b) / 4]
            if (s := evaluate(y, soft_vote(members, w))["macro_f1"]) > best_score + 1e-12:
                best, best_score = w, s
    assert weights == best and score == pytest.approx(best_score)


def test_a_lead_within_the_noise_of_the_validation_people_keeps_the_vote():
    from maskops.ensemble import choose_serving, evaluate_ensemble, member_wins

    y = np.repeat(np.arange(20) % 18, 3)  # 20 people, 3 photos each
    people = [f"p{i // 3}" for i in range(len(y))]
    right = np.eye(18)[y] * 0.9 + 0.1 / 18
    slip = right.copy()
    slip[:3] = np.eye(18)[(y[:3] + 1) % 18] * 0.95 + 0.05 / 18  # wrong, and sure of it, on p0's photos only
    evaluation = evaluate_ensemble(["a_model", "b_model"], [right, slip], y, "equal", groups=people)
    assert evaluation.ensemble_metrics["macro_f1"] < evaluation.member_metrics[0]["macro_f1"] == 1.0  # the vote follows b on p0
    wins = member_wins(evaluation, 0)
    assert 0.5 < wins < 0.8  # a is better only when p0 is drawn (1 - (19/20)^20 = 0.64 of resamples)
    kept = choose_serving(evaluation, margin=0.0, confidence=0.9)
    assert kept.earned and kept.members == [0, 1] and kept.member_wins == wins and "within the noise" in kept.reason
    plain = choose_serving(evaluation, margin=0.0)  # confidence 0: the plain comparison
    assert not plain.earned and plain.members == [0] and plain.member_wins is None


def test_promotion_keeps_or_moves_the_champion(tracking_store):
    from tracking.registry import promote

    client = tracking_store.service().client
    name = "promotion-test"
    client.create_registered_model(name)
    versions = [client.create_model_version(name, source=f"file:///nowhere/{i}").version for i in range(4)]
    first = promote(client, name, versions[0], 0.50, "val-A")
    assert first.decision == "champion" and client.get_model_version_by_alias(name, "champion").version == versions[0]
    worse = promote(client, name, versions[1], 0.40, "val-A", margin=0.05)
    assert worse.decision == "challenger" and worse.champion_score == pytest.approx(0.50)
    assert client.get_model_version_by_alias(name, "champion").version == versions[0]
    assert client.get_model_version_by_alias(name, "challenger").version == versions[1]
    close = promote(client, name, versions[2], 0.47, "val-A", margin=0.05)  # within the margin
    assert close.decision == "champion" and client.get_model_version_by_alias(name, "champion").version == versions[2]
    rescored = []
    moved = promote(client, name, versions[3], 0.60, "val-B", rescore=lambda tags: rescored.append(tags) or 0.55)
    assert rescored and moved.decision == "champion" and moved.champion_score == pytest.approx(0.55)  # other people: measured again
    recorded = client.get_model_version(name, versions[1])
    assert recorded.tags["maskops.decision"] == "not promoted" and "kept the champion" in recorded.description


def test_a_champion_whose_member_was_deleted_gives_way_to_the_new_version(tracking_store):
    """Re-scoring a champion on new validation people loads its members; one deleted in a registry clean-up once made
    every promotion raise, leaving each retry's new version registered with no alias."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST

    from tracking.registry import promote

    client = tracking_store.service().client
    client.create_registered_model("gone-member-test")
    a, b = (client.create_model_version("gone-member-test", source=f"file:///nowhere/{i}").version for i in range(2))
    promote(client, "gone-member-test", a, 0.7, "val-A")

    def rescore(tags: dict) -> float:
        raise MlflowException("Model Version (name=maskops-raw, version=1) not found", error_code=RESOURCE_DOES_NOT_EXIST)

    moved = promote(client, "gone-member-test", b, 0.5, "val-B", rescore=rescore)
    assert moved.decision == "champion" and "cannot be re-scored: Model Version (name=maskops-raw, version=1) not found" in moved.reason
    assert client.get_model_version_by_alias("gone-member-test", "champion").version == b


def test_a_champion_with_fitted_weights_is_rescored_cross_fitted_as_the_challenger_is(monkeypatch: pytest.MonkeyPatch):
    """The challenger's score with `weights: fitted` is cross-fitted; the champion was re-scored with the weights it had
    fitted on every validation person, in-sample when only a label changed: the same ensemble as champion beat itself
    as challenger in 13 of 20 seeds."""
    import tracking.ensemble as tracked
    from maskops.ensemble import evaluate_ensemble, soft_vote
    from maskops.metrics import evaluate
    from tracking.registry import MEMBERS_TAG

    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(18), 8)
    groups = [f"person{i % 24}" for i in range(len(y))]
    members = []
    for skill in (0.3, 0.6, 1.2):  # three members of different skill
        logits = rng.normal(size=(len(y), 18))
        logits[np.arange(len(y)), y] += skill * 3
        members.append(np.exp(logits) / np.exp(logits).sum(1, keepdims=True))
    monkeypatch.setattr(tracked, "probabilities", lambda service, specs, paths, open_image, tta: members)
    challenger = evaluate_ensemble(["a", "b", "c"], members, y, "fitted", groups=groups)
    spec = {"members": [{"variant": v, "model_uri": f"models:/maskops-{v}/1", "image_size": 32} for v in ("raw", "relabeled", "cleaned")],
            "weights": challenger.weights, "tta": False, "temperatures": challenger.temperatures}  # fmt: skip
    in_sample = evaluate(y, soft_vote(members, challenger.weights, challenger.temperatures))["macro_f1"]
    rescored = tracked.rescore(None, {MEMBERS_TAG: json.dumps(spec)}, [""] * len(y), y, None, groups)
    assert rescored == pytest.approx(challenger.ensemble_metrics["macro_f1"]) and rescored != pytest.approx(in_sample)


def test_a_member_with_non_finite_probabilities_is_named():
    """One NaN once failed deep in the calibration code ("'list' argument must have no negative elements")."""
    from maskops.ensemble import evaluate_ensemble

    good = np.full((4, 18), 1 / 18)
    bad = good.copy()
    bad[2, 5] = np.nan
    with pytest.raises(ValueError, match="generated_model's probabilities are not finite on 1 of 4 validation images"):
        evaluate_ensemble(["raw_model", "generated_model"], [good, bad], np.array([0, 1, 2, 3]), "equal")


def test_an_equal_score_takes_the_champion_alias(tracking_store):
    from tracking.registry import promote

    client = tracking_store.service().client
    client.create_registered_model("tie-test")
    a, b = (client.create_model_version("tie-test", source=f"file:///nowhere/{i}").version for i in range(2))
    promote(client, "tie-test", a, 2 / 3, "val")  # its tag reads 0.666667, above 2/3
    assert promote(client, "tie-test", b, 2 / 3, "val").decision == "champion"


def test_a_registry_that_cannot_be_read_promotes_nothing(tracking_store):
    """Only 'no such model or alias' means 'no champion yet': a timeout or a locked database must not hand the alias over."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE

    from tracking.registry import promote

    class LockedRegistry(MlflowClient):
        """Writes go through; reading the model or its aliases fails as a locked database or a timeout would."""

        def get_registered_model(self, name):
            raise MlflowException("database is locked", error_code=TEMPORARILY_UNAVAILABLE)

        get_model_version_by_alias = get_registered_model

    client = tracking_store.service().client
    client.create_registered_model("locked-test")
    good, worse = (client.create_model_version("locked-test", source=f"file:///nowhere/{i}").version for i in range(2))
    promote(client, "locked-test", good, 0.9, "val")
    with pytest.raises(MlflowException, match="database is locked"):
        promote(LockedRegistry(tracking_uri=tracking_store.tracking_uri), "locked-test", worse, 0.1, "val")
    assert client.get_registered_model("locked-test").aliases == {"champion": good}  # the worse model took nothing


def test_members_must_share_one_crop_recipe(models_dir: Path):
    from maskops.crop import CropRecipeError
    from maskops.ensemble import shared_recipe
    from tests.conftest import tiny_recipe

    same = shared_recipe({"raw_model": tiny_recipe(models_dir), "cleaned_model": tiny_recipe(models_dir)})
    assert same.config.background_model == "u2net_custom"
    with pytest.raises(CropRecipeError, match=r"cleaned_model.*'margin': 10"):
        shared_recipe({"raw_model": tiny_recipe(models_dir), "cleaned_model": tiny_recipe(models_dir, margin=10)})


def test_an_unregistered_member_is_refused(tracking_store):
    from tracking.ensemble import MemberError, registered_members

    record = {"variant": "raw", "model_id": "m-none", "run_id": "r-none", "artifact_location": "file:///nowhere", "image_size": 32}
    with pytest.raises(MemberError, match=r"raw_model .* passed its model_quality check"):
        registered_members(tracking_store.service(), [record])


@pytest.fixture(scope="module")
def pipeline_end(tiny_dataset: Path, models_dir: Path, tracking_store, tmp_path_factory: pytest.TempPathFactory):
    """ensemble + submission materialized over stub members (one small untrained model, logged once and
    registered as every variant, as a passing model_quality check would)."""
    import torch

    from assets.checks import submission_check
    from assets.ensemble import ensemble, ensemble_check, submission
    from maskops.models import MaskNet, ProbabilityModel
    from tests.conftest import photos_as_crops, pipeline_resources, stub_asset, tiny_recipe
    from tracking.models import register_passing
    from tracking.service import pinned

    state = tmp_path_factory.mktemp("ensemble-state")
    service = tracking_store.service()
    torch.manual_seed(0)
    with service.run("member", {}) as run:
        logged = run.log_pytorch_model(ProbabilityModel(MaskNet("resnet10t", "hard")).eval(), np.zeros((2, 3, 32, 32), np.float32),
                                       {"image_size": 32}, pinned("torch"))  # fmt: skip
    recipe = tiny_recipe(models_dir, size=96)
    records = []
    for v in ("raw", "relabeled", "cleaned", "generated"):
        register_passing(service, v, logged, {"val_macro_f1": 0.5, "floor": 0.1})
        records.append({"variant": v, "model_uri": logged.uri, "model_id": logged.model_id, "run_id": logged.run_id,
                        "artifact_location": logged.artifact_location, "image_size": 32, "crop_recipe": recipe})  # fmt: skip
    layout = scan_competition(tiny_dataset)
    stubs = [stub_asset(f"{r['variant']}_model", r, "record_io_manager") for r in records]
    stubs += [stub_asset("relabeled_crops", photos_as_crops(layout.train, recipe)), stub_asset("eval_crops", photos_as_crops(layout.eval, recipe)),
              stub_asset("eval_dataset", layout.eval), stub_asset("profile_split", split_profiles(layout.train, n_folds=3, seed=0))]  # fmt: skip
    resources = pipeline_resources(state, tiny_dataset, models_dir, tracking_store)
    result = dg.materialize([*stubs, ensemble, ensemble_check, submission, submission_check], resources=resources,
                            instance=dg.DagsterInstance.ephemeral())  # fmt: skip
    assert result.success
    return result, state, tracking_store


def test_ensemble_and_submission_assets(pipeline_end, tiny_dataset: Path):
    import mlflow

    result, state, tracking = pipeline_end
    record = result.output_for_node("ensemble")
    assert record["promotion"]["decision"] == "champion" and record["model_uri"].startswith("models:/maskops-ensemble/")
    assert [m["model"] for m in record["member_metrics"]] == ["raw_model", "relabeled_model", "cleaned_model", "generated_model"]
    assert record["members"][0]["model_uri"].startswith("models:/maskops-raw/")  # registered versions, not runs
    meta = result.asset_materializations_for_node("ensemble")[0].metadata
    models = [r.data["model"] for r in meta["comparison"].records]
    assert models == [*(f"{v}_model" for v in ("raw", "relabeled", "cleaned", "generated")), "ensemble"]
    for figure in ("comparison_chart", "confusion_matrix", "confusion_matrices"):  # files the metadata links to
        assert Path(meta[figure].value).read_bytes()[:4] == b"\x89PNG"
    client = tracking.service().client
    run = client.get_run(record["run_id"])
    assert {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")} >= {
        "evaluation/comparison.csv",
        "evaluation/confusion_matrix.png",
        "evaluation/confusion_matrices.png",
        *(f"evaluation/confusion_{v}_model.csv" for v in ("raw", "relabeled", "cleaned", "generated")),
        "evaluation/confusion_ensemble.csv",
    }
    folder = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="evaluation", dst_path=str(state / "dl"),
                                                      tracking_uri=tracking.tracking_uri))  # fmt: skip
    matrices = {m: pd.read_csv(folder / f"confusion_{m}.csv", index_col=0).to_numpy() for m in ("raw_model", "generated_model", "ensemble")}
    totals = {m.sum() for m in matrices.values()}
    assert len(totals) == 1 and totals.pop() > 0 and matrices["ensemble"].shape == (18, 18)  # the same validation images for all
    assert np.trace(matrices["ensemble"]) / matrices["ensemble"].sum() == pytest.approx(record["val_metrics"]["accuracy"])
    info = pd.read_csv(tiny_dataset / "eval/info.csv")
    written = pd.read_csv(state / "submissions/submission.csv")
    assert list(written["ImageID"]) == list(info["ImageID"]) and written["ans"].between(0, 17).all()
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert set(checks) == {"submission_contract", "ensemble_earns_its_place"} and all(c.passed for c in checks.values())
    # four identical members: the soft vote ties its best member, so it serves, and says why
    assert record["serving"]["earned"] and record["serving"]["members"] == [0, 1, 2, 3]
    stored = mlflow.artifacts.download_artifacts(artifact_uri=tracking.service().storage_location(record["model_uri"]) + "/MLmodel",
                                                 dst_path=str(state / "mlmodel"), tracking_uri=tracking.tracking_uri)  # fmt: skip
    config = mlflow.models.Model.load(stored).flavors["python_function"]["config"]  # the pyfunc's config
    assert config["photo_side"] == 512  # the synthetic photos are 384 x 512: larger photos are shrunk to that before cropping
    assert "the soft vote of every member serves" in meta["serves"].value


def _submission_of(pipeline_end, dataset: Path, state: Path, models_dir: Path, without_crops: bool = False):
    """Materialize submission and its contract alone over the ensemble already made, on another evaluation set."""
    from assets.checks import submission_check
    from assets.ensemble import submission
    from tests.conftest import photos_as_crops, pipeline_resources, stub_asset

    result, _, tracking = pipeline_end
    record = result.output_for_node("ensemble")
    evaluation = scan_competition(dataset).eval
    crops = photos_as_crops(evaluation, record["crop_recipe"])
    if without_crops:
        crops = crops.assign(crop_path=None)
    stubs = [
        stub_asset("ensemble", record, "record_io_manager"),
        stub_asset("eval_crops", crops),
        stub_asset("eval_dataset", evaluation),
    ]
    return dg.materialize([*stubs, submission, submission_check], resources=pipeline_resources(state, dataset, models_dir, tracking),
                          instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)  # fmt: skip


@pytest.mark.hostile
def test_spaces_around_the_ids_of_info_csv_change_no_answer(pipeline_end, tiny_dataset: Path, models_dir: Path, tmp_path: Path):
    root = tmp_path / "dataset"
    shutil.copytree(tiny_dataset, root)
    info = pd.read_csv(root / "eval/info.csv", dtype=str)
    info.assign(ImageID="  " + info["ImageID"] + " ").to_csv(root / "eval/info.csv", index=False)
    result = _submission_of(pipeline_end, root, tmp_path / "state", models_dir)
    assert result.success and all(c.passed for c in result.get_asset_check_evaluations())
    written = pd.read_csv(tmp_path / "state/submissions/submission.csv", dtype={"ImageID": str})
    before = pd.read_csv(pipeline_end[1] / "submissions/submission.csv", dtype={"ImageID": str})
    pd.testing.assert_frame_equal(written, before)  # the same ids, in the same order, with the same answers


@pytest.mark.hostile
def test_a_submission_of_guesses_fails_its_contract(pipeline_end, tiny_dataset: Path, models_dir: Path, tmp_path: Path):
    result = _submission_of(pipeline_end, tiny_dataset, tmp_path / "state", models_dir, without_crops=True)
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and check.check_name == "submission_contract"  # blocking: nothing downstream takes it


@pytest.mark.hostile
def test_an_evaluation_set_that_is_gone_keeps_the_last_submission_and_none_gives_an_empty_one(
    pipeline_end, tiny_dataset: Path, models_dir: Path, tmp_path: Path
):
    root, state = tmp_path / "dataset", tmp_path / "state"
    shutil.copytree(tiny_dataset, root)
    shutil.rmtree(root / "eval")  # unmounted, or mid-copy: a dataset without eval/ reads as an empty evaluation set
    (state / "submissions").mkdir(parents=True)
    last = shutil.copy(pipeline_end[1] / "submissions/submission.csv", state / "submissions/submission.csv")
    before = Path(last).read_bytes()
    result = _submission_of(pipeline_end, root, state, models_dir)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.event_specific_data.error.to_string()
    assert "eval/info.csv lists no evaluation images" in message and "is kept" in message and "delete" in message
    assert Path(last).read_bytes() == before  # the last answers are not blanked
    Path(last).unlink()  # what the message says to do to accept it (or a dataset that never had eval/)
    result = _submission_of(pipeline_end, root, state, models_dir)
    assert result.success and all(c.passed for c in result.get_asset_check_evaluations())
    assert Path(last).read_text() == "ImageID,ans\n"


def _env(tracking) -> dict:
    return {**os.environ, "MLFLOW_TRACKING_URI": tracking.tracking_uri, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


def test_registered_ensemble_round_trip_in_a_fresh_process(pipeline_end, tiny_dataset: Path, tmp_path: Path):
    _, _, registry = pipeline_end
    photos = sorted((tiny_dataset / "train/images").iterdir())[0]
    (tmp_path / "not_an_image.jpg").write_text("hello")
    # The fresh process cannot import the project (no editable-install finder, not run from the
    # repository): the model must bring its own maskops code.
    script = f"""
import sys, importlib.util
sys.meta_path = [f for f in sys.meta_path if not type(f).__module__.startswith("__editable__") and not getattr(f, "__module__", "").startswith("__editable__")]
sys.path = [p for p in sys.path if p not in ("", {str(Path.cwd())!r})]
assert importlib.util.find_spec("maskops") is None, "maskops is still importable"
import mlflow, pandas as pd, json
model = mlflow.pyfunc.load_model("models:/maskops-ensemble@champion")
import maskops
assert "/code/maskops/" in maskops.__file__, maskops.__file__  # the copy bundled with the model
paths = {[str(p) for p in sorted(photos.iterdir())[:3]]!r}
frame = pd.DataFrame({{"image": paths + [open(paths[0], "rb").read(), {str(tmp_path / "not_an_image.jpg")!r}]}})
out = model.predict(frame)
print(json.dumps({{"columns": list(out.columns), "status": list(out["status"]), "sums": out[[f"p_{{i}}" for i in range(18)]].sum(axis=1).round(5).tolist(),
                  "confidence_is_top": bool((out["confidence"].iloc[:4] - out[[f"p_{{i}}" for i in range(18)]].iloc[:4].max(axis=1)).abs().max() < 1e-9),
                  "classes": [None if pd.isna(c) else int(c) for c in out["class_id"]]}}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=_env(registry), timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["columns"][:6] == ["status", "class_id", "mask", "gender", "age_group", "confidence"] and len(out["columns"]) == 6 + 18
    assert out["confidence_is_top"]
    assert out["status"][:4] == ["ok"] * 4 and out["status"][4].startswith("unreadable image")
    assert out["sums"][:4] == [1.0] * 4 and out["classes"][0] == out["classes"][3]  # a path and its bytes agree
    assert out["classes"][4] is None


def test_predict_cli_on_good_and_bad_inputs(pipeline_end, tiny_dataset: Path, tmp_path: Path):
    _, _, registry = pipeline_end
    folder = sorted((tiny_dataset / "train/images").iterdir())[1]
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(sorted(folder.iterdir())[0].read_bytes()[:400])
    cli = [sys.executable, "-m", "apps.cli", "predict"]
    done = subprocess.run(
        [*cli, str(folder), str(bad), str(truncated), "--out", str(tmp_path / "p.csv")],
        capture_output=True, text=True, env=_env(registry), timeout=300,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-2000:]  # partial results: two inputs had no prediction
    table = pd.read_csv(tmp_path / "p.csv")
    assert len(table) == 9 and list(table["path"])[-2:] == [str(bad), str(truncated)]
    assert (table["status"].iloc[:7] == "ok").all() and table["class_id"].iloc[:7].between(0, 17).all()
    assert table["confidence"].iloc[:7].between(1 / 18, 1).all() and table["confidence"].iloc[7:].isna().all()
    assert table["status"].iloc[7].startswith("unreadable image") and table["status"].iloc[8].startswith("unreadable image")
    assert table["class_id"].iloc[7:].isna().all()
    assert (
        "9 rows written to" in done.stdout
        and ": 7 predictions, 2 photos without one" in done.stdout
        and "notes.txt" in done.stderr
        and "truncated.jpg" in done.stderr
    )
    unknown = subprocess.run(
        [*cli, str(folder), "--model", "models:/maskops-ensemble@nonexistent"],
        capture_output=True,
        text=True,
        env=_env(registry),
        timeout=300,
    )
    assert unknown.returncode == 2 and "cannot load models:/maskops-ensemble@nonexistent" in unknown.stderr
    assert "registered models:" in unknown.stderr and "maskops-ensemble" in unknown.stderr
    no_name = subprocess.run(
        [*cli, str(folder), "--model", "models:/no-such-model/1"], capture_output=True, text=True, env=_env(registry), timeout=300
    )
    assert no_name.returncode == 2 and "cannot load models:/no-such-model/1" in no_name.stderr
    (tmp_path / "empty").mkdir()
    empty = subprocess.run([*cli, str(tmp_path / "empty")], capture_output=True, text=True, env=_env(registry), timeout=300)
    assert empty.returncode == 2 and "holds no image files" in empty.stderr


def test_serve_answers_over_http(pipeline_end, tiny_dataset: Path, tmp_path: Path):
    import urllib.request

    from tests.servers import free_port, running

    _, _, registry = pipeline_end
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    photos = [str(p) for p in sorted(sorted((tiny_dataset / "train/images").iterdir())[0].iterdir())[:2]]
    serve = [
        sys.executable,
        "-m",
        "apps.cli",
        "serve",
        "--port",
        str(port),
        "--allow-path-root",
        str(tiny_dataset),
        "--allow-path-root",
        str(tmp_path),
    ]
    with running(serve, f"{base}/ping", tmp_path / "serve.log", _env(registry)):
        body = {"dataframe_split": {"columns": ["path"], "data": [[photos[0]], [photos[1]], [str(tmp_path / "missing.jpg")]]}}
        request = urllib.request.Request(
            f"{base}/invocations", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            predictions = json.load(response)["predictions"]
    assert [p["status"] for p in predictions][:2] == ["ok", "ok"] and predictions[2]["status"].startswith("cannot open file")
    assert all(0 <= p["class_id"] < 18 and abs(sum(p[f"p_{i}"] for i in range(18)) - 1) < 1e-6 for p in predictions[:2])
