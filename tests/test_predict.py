"""`maskops predict` and the per-image robustness under it: a tiny image, a FIFO or an unreadable file costs only its
own row; --out FILE or DIR, a default under the state folder, a summary table, member-model URIs, no stray files."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from apps.cli import main
from tests.registered import register_ensemble


@pytest.fixture(scope="module")
def registry(tracking_store, models_dir: Path):
    return tracking_store, register_ensemble(tracking_store.service(), models_dir / "tiny_segmenter.onnx")


@pytest.fixture
def state(registry, models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    tracking, _ = registry
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking.tracking_uri)
    monkeypatch.setenv("MASKOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MASKOPS_MODELS", str(models_dir))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "home"


@pytest.fixture
def photos(tmp_path: Path, astronaut) -> Path:
    """Two photos, an image too small for MTCNN, and a FIFO named like a photo."""
    folder = tmp_path / "in"
    folder.mkdir()
    astronaut.save(folder / "a_face.jpg")
    astronaut.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((300, 300)).save(folder / "b_face.png")
    Image.new("RGB", (15, 11), (90, 60, 40)).save(folder / "c_tiny.png")
    os.mkfifo(folder / "d_pipe.jpg")
    return folder


def test_mtcnn_raises_on_a_tiny_image_and_the_detector_keeps_it_to_that_image(face_detector, astronaut):
    tiny = np.zeros((11, 15, 3), np.uint8)
    with pytest.raises(ValueError, match="non-empty list"):  # what MTCNN itself does (torch.cat of an empty image pyramid)
        face_detector._mtcnn.detect(tiny[None])
    faces = face_detector.detect([Image.fromarray(tiny), astronaut, np.zeros((1, 1, 3), np.uint8)])
    assert faces[0] is None and faces[2] is None and faces[1] is not None and faces[1].prob > 0.99


def test_crop_batch_falls_back_for_degenerate_images(face_detector, astronaut):
    from maskops.crop import CropConfig, crop_batch

    config = CropConfig(remove_background=False, size=32)
    crops, records = crop_batch([Image.new("RGB", (1, 1)), astronaut, Image.new("RGB", (3, 40))], config, None, face_detector)
    assert [c.size for c in crops] == [(32, 32)] * 3
    assert [r["fallback"] for r in records] == [True, False, True]


def test_the_pyfunc_answers_each_row_alone(registry, models_dir: Path, tmp_path: Path, astronaut):
    from tracking.prediction import load_model

    tracking, registered = registry
    model = load_model(tracking.service(), registered.ensemble_uri, models_dir)
    os.mkfifo(tmp_path / "pipe.jpg")
    tiny = io.BytesIO()
    Image.new("RGB", (8, 8)).save(tiny, "PNG")
    face = io.BytesIO()
    astronaut.save(face, "JPEG")
    out = model.predict(pd.DataFrame({"image": [face.getvalue(), tiny.getvalue(), str(tmp_path / "pipe.jpg"), "/dev/zero", b"GIF89a"]}))
    assert list(out["status"][:2]) == ["ok", "ok"] and list(out["status"][2:4]) == ["not a regular file"] * 2
    assert out["status"][4].startswith("unreadable image") and pd.isna(out["class_id"][4])
    alone = model.predict(pd.DataFrame({"image": [face.getvalue()]}))
    assert np.allclose(out.filter(like="p_").iloc[0], alone.filter(like="p_").iloc[0], atol=1e-6)


def test_the_pyfunc_keeps_the_inputs_index_and_says_plainly_what_is_wrong(registry, models_dir: Path, astronaut):
    """Answers join back onto a filtered frame by its index (they once came back as 0..n-1), and a row's status reads
    the same on every run (Pillow's message named a BytesIO object's memory address)."""
    from tracking.prediction import load_model

    tracking, registered = registry
    model = load_model(tracking.service(), registered.ensemble_uri, models_dir)
    face = io.BytesIO()
    astronaut.save(face, "JPEG")
    frame = pd.DataFrame({"image": [face.getvalue(), b"plain text, not a photo", None]}, index=[10, 20, 30])
    out = model.predict(frame)
    assert list(out.index) == [10, 20, 30] and out.loc[10, "status"] == "ok"
    assert out.loc[20, "status"] == "unreadable image: not a format Pillow reads (JPEG, PNG, WebP, BMP, TIFF, GIF, ...)"
    assert out.loc[30, "status"] == "no image in this row: give a file path or image bytes"


def test_a_photo_larger_than_the_training_photos_is_cropped_at_their_scale(registry, models_dir: Path, astronaut):
    """The crop margin is in pixels (40 around the face box, on 384 x 512 training photos): a phone's 1536 x 2048 photo
    was cropped four times tighter than anything the members saw. The ensemble records the training photos' longer
    side and shrinks larger photos to it; a version registered before that takes photos as they come."""
    from maskops.crop import at_training_scale
    from tracking.prediction import load_model

    tracking, old = registry
    scaled = register_ensemble(tracking.service(), models_dir / "tiny_segmenter.onnx", alias="scaled", photo_side=256)
    big = io.BytesIO()
    astronaut.resize((1024, 1024)).save(big, "JPEG")
    for uri, expected in ((scaled.ensemble_uri, (256, 256)), (old.ensemble_uri, (1024, 1024))):
        ensemble = load_model(tracking.service(), uri, models_dir).unwrap_python_model()
        seen, crops = [], ensemble.crops
        ensemble.crops = lambda pictures, crops=crops, seen=seen: seen.extend(p.size for p in pictures) or crops(pictures)
        out = ensemble.predict(None, pd.DataFrame({"image": [big.getvalue()]}))
        assert out["status"].tolist() == ["ok"] and seen == [expected], uri
    small = astronaut.resize((300, 200))
    assert at_training_scale(small, 256) is small and at_training_scale(small, None) is small  # never enlarged; 300 is within 1.25 x 256


def test_predict_out_dir_summary_confidence_and_per_file_status(state: Path, photos: Path, tmp_path: Path, capsys):
    out_dir = tmp_path / "results"
    out_dir.mkdir()
    code = main(["predict", str(photos), str(photos / "d_pipe.jpg"), "--out", str(out_dir)])
    printed = capsys.readouterr()
    assert code == 1  # one input had no prediction
    table = pd.read_csv(out_dir / "predictions.csv")
    assert [Path(p).name for p in table["path"]] == ["a_face.jpg", "b_face.png", "c_tiny.png", "d_pipe.jpg"]  # folders skip FIFOs
    assert list(table["status"]) == ["ok", "ok", "ok", "not a regular file"]
    assert table["confidence"][:3].between(1 / 18, 1).all() and np.allclose(
        table["confidence"][:3], table.filter(like="p_")[:3].max(axis=1)
    )
    assert "photos per predicted class:" in printed.out and "least confident (3 of 3):" in printed.out
    words = {"young": "<30", "middle": "30-59", "old": ">=60"}
    assert {words[g] for g in table["age_group"][:3]} <= set(printed.out.split())  # age groups in Dagster's words
    assert not {"young", "middle", "old"} & set(printed.out.split())
    assert (
        f"4 rows written to {out_dir / 'predictions.csv'}: 3 predictions, 1 photo without one" in printed.out
        and "d_pipe.jpg: not a regular file" in printed.err
    )
    assert sorted(p.name for p in out_dir.iterdir()) == ["predictions.csv"]  # no temporary file left


def test_predict_default_output_is_under_the_state_folder(state: Path, photos: Path, tmp_path: Path, capsys):
    assert main(["predict", str(photos / "a_face.jpg"), "--show", "1"]) == 0
    printed = capsys.readouterr().out
    written = list((state / "predictions").glob("predictions-*.csv"))
    assert len(written) == 1 and f"written to {written[0]}" in printed and written[0].is_absolute()
    assert not (tmp_path / "predictions.csv").exists() and "least confident (1 of 1):" in printed


def test_predict_with_a_member_model(state: Path, registry, photos: Path, tmp_path: Path, monkeypatch, capsys):
    _, registered = registry
    out = tmp_path / "member.csv"
    assert main(["predict", str(photos / "a_face.jpg"), "--model", registered.member_uris[0], "--out", str(out)]) == 0
    assert pd.read_csv(out)["status"].tolist() == ["ok"]
    monkeypatch.setenv("MASKOPS_MODELS", str(tmp_path / "empty-models"))  # the member's background model is not provisioned
    assert main(["predict", str(photos / "a_face.jpg"), "--model", registered.member_uris[0], "--out", str(tmp_path / "x.csv")]) == 2
    assert "run `maskops fetch-models`" in capsys.readouterr().err and not (tmp_path / "x.csv").exists()


def test_predict_errors_leave_no_files(state: Path, photos: Path, tmp_path: Path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["predict", str(photos / "a_face.jpg"), "--out", str(blocker / "out.csv")]) == 2
    assert "cannot write" in capsys.readouterr().err
    assert (
        main(["predict", str(photos / "a_face.jpg"), "--model", "models:/maskops-ensemble@nothing", "--out", str(tmp_path / "p.csv")]) == 2
    )
    assert "cannot load models:/maskops-ensemble@nothing" in capsys.readouterr().err
    for bare in ("maskops-ensemble", str(tmp_path / "no-such-model")):  # a name without models:/, a folder that is not there
        assert main(["predict", str(photos / "a_face.jpg"), "--model", bare, "--out", str(tmp_path / "p.csv")]) == 2
        assert (
            f"{bare} is neither a model URI nor a model folder on disk: name a registered model as models:/NAME@ALIAS"
            in capsys.readouterr().err
        )
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp") or p.name.endswith(".csv")]


def test_members_stored_as_safetensors_answer_like_their_pt2_graphs(registry, models_dir: Path, photos: Path):
    """The ensemble stores each member's weights as safetensors with its timm architecture (rebuilt in ~0.05 s, where a
    pt2 graph takes ~1 s plus the deserializer's imports); a version made before that keeps its pt2 graphs. Both
    answer the same, and loading the new one never imports torch.export's deserializer."""
    import subprocess
    import sys

    from tracking.ensemble_model import PROBABILITY_COLUMNS
    from tracking.prediction import load_model

    tracking, fast = registry
    service = tracking.service()
    old = register_ensemble(service, models_dir / "tiny_segmenter.onnx", member_architecture=False, alias="pt2")  # same seed, same weights
    frame = pd.DataFrame({"image": [str(photos / "a_face.jpg"), str(photos / "b_face.png")]})
    new_model, old_model = load_model(service, fast.ensemble_uri), load_model(service, old.ensemble_uri)
    new_out, old_out = new_model.predict(frame), old_model.predict(frame)
    assert (new_out["status"] == "ok").all() and (old_out["status"] == "ok").all()
    np.testing.assert_allclose(new_out[PROBABILITY_COLUMNS].to_numpy(float), old_out[PROBABILITY_COLUMNS].to_numpy(float), atol=1e-6)
    files = {Path(p).name for p in service.download(fast.ensemble_uri, Path(frame["image"][0]).parent.parent / "dl").rglob("*")}
    assert "member_raw.safetensors" in files
    probe = (
        "import sys; from tracking.service import TrackingService; from tracking.prediction import load_model; "
        f"load_model(TrackingService({tracking.tracking_uri!r}), {fast.ensemble_uri!r}); print('torch._export.serde.serialize' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=Path(__file__).parents[1], timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "False"
