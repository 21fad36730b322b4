"""Hostile dataset inputs found by a tester: each one gets a clear answer, never a bare traceback or a silent error."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from maskops.layout import LayoutError, fingerprint, scan_competition, source_fingerprint
from tests.conftest import snapshot


def test_a_trailing_comma_on_every_train_row_reads_the_same_rows(dataset_copy: Path) -> None:
    expected = scan_competition(dataset_copy).train[["image_id", "class_id"]]
    csv = dataset_copy / "train/train.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([lines[0], *(line + "," for line in lines[1:])]) + "\n")
    got = scan_competition(dataset_copy).train[["image_id", "class_id"]]
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected.reset_index(drop=True))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_pipe_among_the_evaluation_images_is_named_for_what_it_is(dataset_copy: Path) -> None:
    name = pd.read_csv(dataset_copy / "eval/info.csv")["ImageID"].iloc[0]
    (dataset_copy / "eval/images" / name).unlink()
    os.mkfifo(dataset_copy / "eval/images" / name)
    with pytest.raises(LayoutError) as info:
        scan_competition(dataset_copy)  # must not block reading the pipe
    assert f"eval/images/{name}" in str(info.value) and "is not a regular file" in str(info.value)


def test_a_dangling_link_does_not_break_the_source_fingerprint(dataset_copy: Path) -> None:
    before = source_fingerprint(dataset_copy)
    folder = pd.read_csv(dataset_copy / "train/train.csv")["path"].iloc[0]
    (dataset_copy / "train/images" / folder / "mask1.jpg").unlink()
    os.symlink(dataset_copy / "nowhere.jpg", dataset_copy / "train/images" / folder / "mask1.jpg")
    after = source_fingerprint(dataset_copy)  # the sensor keeps polling; scan names the problem
    assert after != before
    with pytest.raises(LayoutError) as info:
        scan_competition(dataset_copy)
    assert f"{folder}/mask1.jpg" in str(info.value) and "fix:" in str(info.value)


def test_a_file_name_that_is_not_utf8_is_named_for_what_it_is(dataset_copy: Path) -> None:
    """A latin-1 file name (bytes that are not UTF-8) once passed the scan and crashed writing the manifest (pyarrow),
    and crashed the source fingerprint, so the sensor stopped observing the dataset without naming the file."""
    photo, before = next((dataset_copy / "mask_only/wear").iterdir()).read_bytes(), source_fingerprint(dataset_copy)
    for folder in ("mask_only/wear", "eval/images"):
        with open(os.path.join(os.fsencode(dataset_copy / folder), b"caf\xe9.jpg"), "wb") as f:
            f.write(photo)
    assert source_fingerprint(dataset_copy) != before  # the sensor still sees the dataset change
    with pytest.raises(LayoutError) as info:
        scan_competition(dataset_copy)
    for folder in ("mask_only/wear", "eval/images"):
        assert f"{folder}/caf\\xe9.jpg: its name is not UTF-8 text" in str(info.value)
    assert "rename it to a UTF-8 name" in str(info.value)


def test_hidden_files_do_not_change_the_source_fingerprint(dataset_copy: Path) -> None:
    """Browsing the dataset in macOS's Finder writes .DS_Store files: the scan ignores them, and the fingerprint the
    sensor polls must too, or every browse would start a re-run of everything downstream."""
    before = source_fingerprint(dataset_copy)
    folder = pd.read_csv(dataset_copy / "train/train.csv")["path"].iloc[0]
    for where in (dataset_copy / "train/images", dataset_copy / "train/images" / folder, dataset_copy / "eval/images"):
        (where / ".DS_Store").write_bytes(b"Bud1")
    (dataset_copy / "train/images" / folder / "._mask1.jpg").write_bytes(b"\x00\x05\x16\x07")
    (dataset_copy / "train/images/.Trashes").mkdir()
    (dataset_copy / "train/images/.Trashes/old.jpg").write_bytes(b"x")
    assert source_fingerprint(dataset_copy) == before
    (dataset_copy / "train/images" / folder / "mask1.jpg").write_bytes(b"changed")
    assert source_fingerprint(dataset_copy) != before


def test_an_empty_table_has_a_data_version() -> None:
    empty = pd.DataFrame({"image_id": pd.Series(dtype="string"), "content_hash": pd.Series(dtype="string")})
    assert fingerprint(empty) == fingerprint(empty.copy()) and len(fingerprint(empty)) == 16
    one = pd.DataFrame({"image_id": ["a"], "content_hash": ["h"]})
    assert fingerprint(one) != fingerprint(empty)


def test_a_dataset_without_eval_scans_to_an_empty_evaluation_table(dataset_copy: Path) -> None:
    import shutil

    shutil.rmtree(dataset_copy / "eval")
    before = snapshot(dataset_copy)
    layout = scan_competition(dataset_copy)
    assert len(layout.eval) == 0 and len(fingerprint(layout.eval, ("image_id", "content_hash", "order"))) == 16
    assert snapshot(dataset_copy) == before


def test_exclusions_of_every_profile_are_refused_with_the_file_named(tiny_dataset: Path, tmp_path: Path) -> None:
    from maskops.cleaning import CleaningError, CleaningRules, clean, read_exclusions
    from maskops.corrections import LabelFileError

    manifest = scan_competition(tiny_dataset).train
    path = tmp_path / "exclusions.csv"
    rows = [f"{p},,poster" for p in sorted(manifest["profile_id"].unique())]
    path.write_text("\n".join(["profile_id,stem,reason", *rows]) + "\n")
    with pytest.raises(LabelFileError) as info:
        read_exclusions(path, manifest)
    assert str(path) in str(info.value) and "every one of the 6 profiles" in str(info.value) and "fix:" in str(info.value)
    # the rules alone can empty it too (every age in the band): a clear error, not a TypeError further on
    with pytest.raises(CleaningError, match="would remove all 42 images"):
        clean(manifest, read_exclusions(tmp_path / "none.csv", manifest), CleaningRules(age_band_low=0, age_band_high=120))


@pytest.mark.slow
def test_a_photo_under_20_pixels_falls_back_to_its_own_crop_and_blocks_nothing(
    dataset_copy: Path, models_dir: Path, tmp_path: Path
) -> None:
    import dagster as dg
    from PIL import Image

    from assets.cropped import build_cropped
    from assets.raw import competition_dataset
    from assets.sources import sources
    from tests.test_data_assets import _resources

    name = pd.read_csv(dataset_copy / "eval/info.csv")["ImageID"].iloc[0]
    Image.new("RGB", (12, 9), (200, 150, 120)).save(dataset_copy / "eval/images" / name)  # MTCNN itself raises on it
    assets = [sources, competition_dataset, build_cropped("eval", "eval_dataset")]
    result = dg.materialize(assets, resources=_resources(dataset_copy, tmp_path / "state", models_dir),
                            run_config={"ops": {"eval_crops": {"config": {"background_model": "u2net_custom"}}}})  # fmt: skip
    assert result.success
    crops = result.output_for_node("eval_crops").set_index("stem")
    assert crops["crop_path"].notna().all()  # every image has a crop, the tiny one too
    assert bool(crops.loc[name, "fallback"]) and not bool(crops.loc[name, "face_found"])
    assert crops.drop(index=name)["face_found"].mean() > 0.5  # its neighbours kept their faces
