"""The competition-layout reader on good data and on a corpus of broken datasets."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from maskops.labels import PROFILE_STEMS, STEM_MASK, age_group, encode, parse_gender
from maskops.layout import LayoutError, fingerprint, scan_competition
from tests.conftest import TINY, snapshot


def test_reads_every_image_with_its_labels(tiny_dataset: Path):
    layout = scan_competition(tiny_dataset)
    train, csv = layout.train, pd.read_csv(tiny_dataset / "train/train.csv", dtype=str)
    assert len(train) == 7 * TINY.profiles
    assert train["profile_id"].nunique() == TINY.profiles
    assert all(sorted(stems) == sorted(PROFILE_STEMS) for stems in train.groupby("profile_id")["stem"].apply(list))
    assert train["image_id"].is_unique
    assert train["readable"].all() and layout.quarantine.empty
    assert set(zip(train["width"], train["height"], strict=False)) == {(384, 512)}
    for row in csv.itertuples():
        images = train[train["profile_id"] == row.path]
        gender, age = int(parse_gender(row.gender)), int(row.age)
        assert (images["gender"] == gender).all() and (images["age"] == age).all()
        for img in images.itertuples():
            assert img.mask == STEM_MASK[img.stem]
            assert img.class_id == encode(img.mask, gender, age_group(age))


def test_eval_manifest_keeps_info_csv_order(tiny_dataset: Path):
    layout = scan_competition(tiny_dataset)
    info = pd.read_csv(tiny_dataset / "eval/info.csv")
    assert list(layout.eval["stem"]) == list(info["ImageID"])
    assert list(layout.eval["order"]) == list(range(len(info)))


def test_hashes_are_content_hashes_and_stable(tiny_dataset: Path, tmp_path: Path):
    layout = scan_competition(tiny_dataset)
    row = layout.train.iloc[0]
    assert row["content_hash"] == hashlib.sha256((tiny_dataset / row["path"]).read_bytes()).hexdigest()
    moved = tmp_path / "elsewhere"
    shutil.copytree(tiny_dataset, moved)
    again = scan_competition(moved, workers=1)
    pd.testing.assert_series_equal(layout.train["content_hash"], again.train["content_hash"])
    assert fingerprint(layout.train) == fingerprint(again.train)
    assert fingerprint(layout.train) == fingerprint(layout.train.sample(frac=1, random_state=0))


def test_scanning_modifies_nothing(tiny_dataset: Path):
    before = snapshot(tiny_dataset)
    scan_competition(tiny_dataset)
    assert snapshot(tiny_dataset) == before


# --- the broken corpus --------------------------------------------------------------------


def _first_profile(root: Path) -> str:
    return pd.read_csv(root / "train/train.csv", dtype=str)["path"].iloc[0]


def _edit_csv(root: Path, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    path = root / "train/train.csv"
    edit(pd.read_csv(path, dtype=str, keep_default_na=False)).to_csv(path, index=False)


def _rename_profile(root: Path, new: str) -> None:
    old = _first_profile(root)
    (root / "train/images" / old).rename(root / "train/images" / new)

    def edit(df: pd.DataFrame) -> pd.DataFrame:
        df.loc[0, "path"] = new
        return df

    _edit_csv(root, edit)


def missing_image(root: Path):
    (root / "train/images" / _first_profile(root) / "mask3.jpg").unlink()
    return _first_profile(root), "missing image(s) mask3"


def extra_image(root: Path):
    p = root / "train/images" / _first_profile(root)
    shutil.copy(p / "mask1.jpg", p / "mask6.jpg")
    return "mask6.jpg", "unexpected file"


def two_files_one_stem(root: Path):
    p = root / "train/images" / _first_profile(root)
    shutil.copy(p / "mask1.jpg", p / "mask1.png")
    return _first_profile(root), "2 files for 'mask1'"


def wrong_field_count(root: Path):
    _rename_profile(root, "000001_female_Asian")
    return "train/train.csv line 2", "has 3 '_'-separated fields, expected 4"


def unknown_gender(root: Path):
    _rename_profile(root, "000001_mal_Asian_45")
    return "train/train.csv line 2", "unknown gender 'mal'"


def non_integer_age(root: Path):
    _rename_profile(root, "000001_female_Asian_4x")
    return "train/train.csv line 2", "'4x' is not an integer"


def impossible_age(root: Path):
    _rename_profile(root, "000001_female_Asian_200")
    return "train/train.csv line 2", "age 200 is impossible"


def bad_row_after_blank_lines(root: Path):  # the line an editor shows (once "line 2": pandas skips blank lines)
    _rename_profile(root, "000001_female_Asian_4x")
    path = root / "train/train.csv"
    header, rest = path.read_text().split("\n", 1)
    path.write_text(f"{header}\n\n\n{rest}")
    return "train/train.csv line 4", "'4x' is not an integer"


def eval_row_after_a_blank_line(root: Path):
    header, first, second, *rest = (root / "eval/info.csv").read_text().splitlines()
    second = first.split(",")[0] + "," + second.split(",", 1)[1]  # the second row names the first row's image
    (root / "eval/info.csv").write_text("\n".join([header, "", first, second, *rest]) + "\n")
    return "eval/info.csv line 4", "is listed 2 times"


def train_csv_not_utf8(root: Path):
    path = root / "train/train.csv"
    path.write_bytes(path.read_bytes() + b"\xe9\n")
    return "train/train.csv", "is not UTF-8 text"


def csv_disagrees_with_folder(root: Path):
    def edit(df):
        df.loc[0, "gender"] = "female" if df.loc[0, "gender"] == "male" else "male"
        df.loc[0, "age"] = "77"
        return df

    _edit_csv(root, edit)
    return "train/train.csv line 2", "disagrees with its folder name"


def duplicate_id(root: Path):
    def edit(df):
        first_id = df.loc[0, "id"]
        old = df.loc[1, "path"]
        new = "_".join([first_id, *old.split("_")[1:]])
        (root / "train/images" / old).rename(root / "train/images" / new)
        df.loc[1, ["id", "path"]] = [first_id, new]
        return df

    _edit_csv(root, edit)
    return "train/train.csv lines 2, 3", "is used 2 times"


def folder_not_in_csv(root: Path):
    folder = _first_profile(root)
    _edit_csv(root, lambda df: df.iloc[1:])
    return f"train/images/{folder}", "not listed in train.csv"


def listed_folder_missing(root: Path):
    shutil.rmtree(root / "train/images" / _first_profile(root))
    return _first_profile(root), "listed in train.csv does not exist"


def missing_eval_image(root: Path):
    name = pd.read_csv(root / "eval/info.csv")["ImageID"].iloc[3]
    (root / "eval/images" / name).unlink()
    return name, "listed in info.csv is missing"


def path_escapes_root(root: Path):
    def edit(df):
        df.loc[0, "path"] = "../../etc"
        return df

    _edit_csv(root, edit)
    return "train/train.csv line 2", "'../../etc' is not a plain folder name"


def symlink_outside_root(root: Path):
    folder = _first_profile(root)
    outside = root.parent / "outside"
    shutil.move(root / "train/images" / folder, outside)
    os.symlink(outside, root / "train/images" / folder)
    return folder, "resolves outside the dataset root"


def eval_id_escapes_root(root: Path):
    info = pd.read_csv(root / "eval/info.csv")
    info.loc[0, "ImageID"] = "../../train/train.csv"
    info.to_csv(root / "eval/info.csv", index=False)
    return "eval/info.csv line 2", "is not a plain file name"


def duplicate_eval_id(root: Path):
    info = pd.read_csv(root / "eval/info.csv")
    info.loc[1, "ImageID"] = info.loc[0, "ImageID"]
    info.to_csv(root / "eval/info.csv", index=False)
    return "eval/info.csv line 2", "is listed 2 times"


def missing_train_csv(root: Path):
    (root / "train/train.csv").unlink()
    return "train/train.csv", "file is missing"


def train_csv_missing_column(root: Path):
    _edit_csv(root, lambda df: df.drop(columns=["race"]))
    return "train/train.csv", "missing column(s) ['race']"


def stray_file_in_images(root: Path):
    (root / "train/images/notes.txt").write_text("hello")
    return "train/images/notes.txt", "holds only profile folders"


def mask_only_unknown_state(root: Path):
    (root / "mask_only/masked").mkdir(parents=True)
    return "mask_only/masked", "not one of the mask-state folders"


def mask_only_loose_photo(root: Path):
    shutil.copy(next((root / "mask_only/not_wear").iterdir()), root / "mask_only/face.jpg")
    return "mask_only/face.jpg", "a file that is not one of the mask-state folders"


def mask_only_not_an_image(root: Path):
    (root / "mask_only/wear/notes.txt").write_text("hello")
    return "mask_only/wear/notes.txt", "not an image file"


def mask_only_photo_under_two_states(root: Path):
    shutil.copy(root / "mask_only/not_wear/lfw_099.jpg", root / "mask_only/wear/copy.jpg")
    return "mask_only/not_wear/lfw_099.jpg", "also under another mask state: mask_only/wear/copy.jpg"


def mask_only_photo_is_a_training_photo(root: Path):
    photo = sorted((root / "train/images").glob("*/normal.jpg"))[0]
    shutil.copy(photo, root / "mask_only/not_wear/zz.jpg")
    return "mask_only/not_wear/zz.jpg", f"the same photo is {photo.relative_to(root)} of the dataset"


BROKEN = [
    mask_only_unknown_state, mask_only_loose_photo, mask_only_not_an_image, mask_only_photo_under_two_states,
    mask_only_photo_is_a_training_photo,
    missing_image, extra_image, two_files_one_stem, wrong_field_count, unknown_gender, non_integer_age,
    impossible_age, bad_row_after_blank_lines, eval_row_after_a_blank_line, train_csv_not_utf8, csv_disagrees_with_folder, duplicate_id, folder_not_in_csv, listed_folder_missing,
    missing_eval_image, path_escapes_root, symlink_outside_root, eval_id_escapes_root, duplicate_eval_id,
    missing_train_csv, train_csv_missing_column, stray_file_in_images,
]  # fmt: skip


@pytest.mark.parametrize("breakage", BROKEN, ids=[f.__name__ for f in BROKEN])
@pytest.mark.hostile
def test_broken_dataset_gets_one_clear_error(dataset_copy: Path, breakage):
    where, what = breakage(dataset_copy)
    before = snapshot(dataset_copy)
    with pytest.raises(LayoutError) as info:
        scan_competition(dataset_copy)
    err = info.value
    matching = [p for p in err.problems if where in p.path and what in p.message]
    assert matching, f"no problem at {where!r} saying {what!r} in:\n{err}"
    assert all(p.fix for p in err.problems)
    assert where in str(err) and what in str(err) and "fix:" in str(err)
    assert snapshot(dataset_copy) == before  # raw files are never modified


def test_mask_only_photos_are_read_with_their_mask_state_alone(tiny_dataset: Path):
    """mask_only/<state>/: photos whose mask state alone is known, labelled MASK_ONLY + mask (never one of the 18)."""
    mask_only = scan_competition(tiny_dataset).mask_only
    on_disk = sorted(str(p.relative_to(tiny_dataset)) for p in (tiny_dataset / "mask_only").rglob("*.jpg"))
    assert sorted(mask_only["path"]) == on_disk and len(on_disk) >= 2  # 2 faces: unmasked, and painted where MTCNN finds them
    states = {"wear": 0, "incorrect": 1, "not_wear": 2}
    assert all(mask_only["mask"] == [states[p.split("/")[1]] for p in mask_only["path"]])
    assert all(mask_only["class_id"] == 18 + mask_only["mask"]) and mask_only["readable"].all()
    assert (mask_only["mask"] == 2).sum() == 2 and mask_only["content_hash"].str.len().eq(64).all()


def test_an_unreadable_mask_only_photo_is_quarantined_with_its_own_fix(dataset_copy: Path):
    (dataset_copy / "mask_only/wear/broken.jpg").write_bytes(b"")
    layout = scan_competition(dataset_copy)
    (row,) = layout.quarantine[layout.quarantine["path"] == "mask_only/wear/broken.jpg"].itertuples()
    assert row.reason == "zero-byte file" and row.fix == "replace the file with a readable image, or delete it"
    assert not layout.mask_only.set_index("path").loc["mask_only/wear/broken.jpg", "readable"]


def test_a_dataset_without_mask_only_photos_has_an_empty_table(dataset_copy: Path):
    shutil.rmtree(dataset_copy / "mask_only")
    layout = scan_competition(dataset_copy)
    assert layout.mask_only.empty and list(layout.mask_only.columns)[:3] == ["image_id", "content_hash", "profile_id"]


def test_every_problem_is_reported_at_once(dataset_copy: Path):
    missing_image(dataset_copy)
    missing_eval_image(dataset_copy)
    stray_file_in_images(dataset_copy)
    with pytest.raises(LayoutError) as info:
        scan_competition(dataset_copy)
    assert len(info.value.problems) == 3
    assert "has 3 problems" in str(info.value)


def test_hidden_files_are_ignored(dataset_copy: Path):
    profile = dataset_copy / "train/images" / _first_profile(dataset_copy)
    (profile / "._mask1.jpg").write_bytes(b"\x00\x05")  # macOS AppleDouble twin
    (dataset_copy / "train/images/.DS_Store").write_bytes(b"junk")
    assert len(scan_competition(dataset_copy).train) == 7 * TINY.profiles


@pytest.mark.parametrize(("content", "reason"), [(b"", "zero-byte file"), (b"\xff\xd8\xff\xe0 not really a jpeg", "undecodable image")])
@pytest.mark.hostile
def test_unreadable_images_are_quarantined_not_dropped(dataset_copy: Path, content: bytes, reason: str):
    folder = _first_profile(dataset_copy)
    (dataset_copy / "train/images" / folder / "normal.jpg").write_bytes(content)
    layout = scan_competition(dataset_copy)
    assert len(layout.train) == 7 * TINY.profiles  # still in the manifest ...
    row = layout.train.set_index("image_id").loc[f"{folder}/normal"]
    assert not row["readable"] and pd.isna(row["width"])  # ... flagged
    assert list(layout.quarantine["path"]) == [f"train/images/{folder}/normal.jpg"]
    assert reason in layout.quarantine["reason"].iloc[0]
    assert "exclusions.csv" in layout.quarantine["fix"].iloc[0]


@pytest.mark.hostile
def test_unlisted_eval_file_is_quarantined(dataset_copy: Path):
    (dataset_copy / "eval/images/stray.jpg").write_bytes(b"x")
    layout = scan_competition(dataset_copy)
    assert list(layout.quarantine["path"]) == ["eval/images/stray.jpg"]
    assert len(layout.eval) == 7 * TINY.eval_profiles


def test_dataset_without_eval_is_fine(dataset_copy: Path):
    shutil.rmtree(dataset_copy / "eval")
    layout = scan_competition(dataset_copy)
    assert layout.eval.empty and len(layout.train) == 7 * TINY.profiles


@pytest.mark.hostile
def test_missing_root_is_a_layout_error(tmp_path: Path):
    with pytest.raises(LayoutError, match="dataset root does not exist"):
        scan_competition(tmp_path / "nope")


def test_the_source_fingerprint_sees_changes_behind_linked_folders_and_photos(dataset_copy: Path, tmp_path: Path):
    """A profile folder linked to a folder inside the root is read through the link by scan(); the fingerprint did not
    descend into it, so a photo replaced behind it, or the link itself added, started nothing."""
    from maskops.layout import source_fingerprint

    images = dataset_copy / "train/images"
    profile = sorted(images.iterdir())[0]
    kept = dataset_copy / "originals" / profile.name
    kept.parent.mkdir()
    profile.rename(kept)
    profile.symlink_to(os.path.relpath(kept, images), target_is_directory=True)
    assert scan_competition(dataset_copy).train["profile_id"].nunique() == TINY.profiles  # scan reads through the link
    before = source_fingerprint(dataset_copy)
    photo = next(kept.iterdir())
    photo.write_bytes(photo.read_bytes() + b"\0")  # replaced behind the link
    assert source_fingerprint(dataset_copy) != before
    before = source_fingerprint(dataset_copy)
    (images / "loop").symlink_to("..", target_is_directory=True)  # a loop ends the walk; the new link counts
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (images / "outside").symlink_to(outside, target_is_directory=True)  # not walked (scan names it), but counted
    (images / "elsewhere.jpg").symlink_to(outside / "photo.jpg")  # a linked photo outside: counted by its link alone
    (outside / "photo.jpg").write_bytes(b"x")
    after = source_fingerprint(dataset_copy)
    assert after != before
    (outside / "new.jpg").write_bytes(b"x")
    (outside / "photo.jpg").write_bytes(b"xy")
    assert source_fingerprint(dataset_copy) == after  # nothing outside the root is read
    for name in ("outside", "loop"):  # made again in another order: the listing's order does not count
        (images / name).unlink()
    (images / "outside").symlink_to(outside, target_is_directory=True)
    (images / "loop").symlink_to("..", target_is_directory=True)
    assert source_fingerprint(dataset_copy) == after
    for name in ("outside", "loop", "elsewhere.jpg"):
        (images / name).unlink()
    assert source_fingerprint(dataset_copy) == before
    linked = images / profile.name / photo.name
    photo.rename(kept / "real.jpg")
    linked.symlink_to("real.jpg")  # a linked photo: its target's change is seen
    before = source_fingerprint(dataset_copy)
    (kept / "real.jpg").write_bytes((kept / "real.jpg").read_bytes() + b"\0")
    assert source_fingerprint(dataset_copy) != before
