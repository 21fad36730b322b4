"""labels/corrections.csv and labels/exclusions.csv: validation, application, cleaning rules."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from maskops.cleaning import CleaningRules, clean, read_exclusions, removal_summary
from maskops.corrections import LabelFileError, apply_corrections, read_corrections
from maskops.labels import MaskState, encode
from maskops.layout import scan_competition


@pytest.fixture(scope="module")
def manifest(tiny_dataset: Path) -> pd.DataFrame:
    return scan_competition(tiny_dataset).train


def _csv(tmp_path: Path, text: str, name: str = "corrections.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_profile_and_image_corrections_apply(manifest: pd.DataFrame, tmp_path: Path):
    p0, p1 = sorted(manifest["profile_id"].unique())[:2]
    path = _csv(tmp_path, "profile_id,stem,field,value,reason\n"
                f"{p0},,age,64,looks older than 60\n"
                f"{p1},,gender,{'female' if p1.split('_')[1] == 'male' else 'male'},hair and face\n"
                f"{p1},incorrect_mask,mask,not_wear,files swapped\n"
                f"{p1},normal,mask,incorrect,files swapped\n")  # fmt: skip
    corrections = read_corrections(path, manifest)
    out = apply_corrections(manifest, corrections)
    assert len(out) == len(manifest) and list(out["image_id"]) == list(manifest["image_id"])
    aged = out[out["profile_id"] == p0]
    assert (aged["age"] == 64).all() and (aged["age_group"] == 2).all() and len(aged) == 7
    assert (aged["raw_age"] == manifest.loc[manifest["profile_id"] == p0, "age"]).all()
    assert (aged["label_source"] == "corrections.csv").all() and aged["correction_reason"].str.contains("looks older").all()
    swapped = out[out["profile_id"] == p1].set_index("stem")
    assert swapped.loc["incorrect_mask", "mask"] == MaskState.NOT_WEAR and swapped.loc["normal", "mask"] == MaskState.INCORRECT
    assert swapped.loc["normal", "raw_mask"] == MaskState.NOT_WEAR
    for r in out.itertuples():
        assert r.class_id == encode(r.mask, r.gender, r.age_group)
    untouched = out[~out["profile_id"].isin([p0, p1])]
    assert (untouched["label_source"] == "raw").all() and not untouched["label_changed"].any()
    assert out["label_changed"].sum() == 7 + 7


def test_missing_corrections_file_means_none(manifest: pd.DataFrame, tmp_path: Path):
    out = apply_corrections(manifest, read_corrections(tmp_path / "absent.csv", manifest))
    assert (out["label_source"] == "raw").all() and (out["class_id"] == manifest["class_id"]).all()


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("999999_male_Asian_20,,age,30,x", "unknown profile '999999_male_Asian_20'"),
        ("{p},mask9,mask,wear,x", "unknown image"),
        ("{p},,height,180,x", "unknown field 'height'"),
        ("{p},,age,250,x", "age 250 is impossible"),
        ("{p},,gender,robot,x", "unknown gender 'robot'"),
        ("{p},,mask,wear,x", "a mask correction needs the image"),
        ("{p},normal,gender,male,x", "gender belongs to the person"),
        ("{p},normal,mask,sideways,x", "unknown mask state 'sideways'"),
        ("{p},,age,40,", "no reason given"),
    ],
)
@pytest.mark.hostile
def test_bad_correction_rows_are_named(manifest: pd.DataFrame, tmp_path: Path, row: str, message: str):
    p = manifest["profile_id"].iloc[0]
    path = _csv(tmp_path, "profile_id,stem,field,value,reason\n" + row.format(p=p) + "\n")
    with pytest.raises(LabelFileError) as info:
        read_corrections(path, manifest)
    assert f"{path} line 2" in str(info.value) and message in str(info.value) and "fix:" in str(info.value)


@pytest.mark.hostile
def test_conflicting_duplicates_are_refused_identical_ones_merged(manifest: pd.DataFrame, tmp_path: Path):
    p = manifest["profile_id"].iloc[0]
    same = _csv(tmp_path, f"profile_id,stem,field,value,reason\n{p},,age,40,a\n{p},,age,40,b\n", "same.csv")
    assert len(read_corrections(same, manifest)) == 1
    conflict = _csv(tmp_path, f"profile_id,stem,field,value,reason\n{p},,age,40,a\n{p},,age,41,b\n", "conflict.csv")
    with pytest.raises(LabelFileError, match=r"lines 2, 3: conflicting age values"):
        read_corrections(conflict, manifest)


@pytest.mark.hostile
def test_wrong_header_is_named(manifest: pd.DataFrame, tmp_path: Path):
    path = _csv(tmp_path, "profile,field,value\nx,age,3\n")
    with pytest.raises(LabelFileError, match=r"missing column\(s\) \['profile_id', 'stem', 'reason'\]"):
        read_corrections(path, manifest)


@pytest.mark.hostile
def test_label_files_read_as_spreadsheets_write_them_with_the_lines_an_editor_shows(manifest: pd.DataFrame, tmp_path: Path):
    """Trailing commas on every row (a spreadsheet's export) once shifted every column onto pandas' index: the
    profile id was read as the stem and "unknown profile 'normal'" was reported for a valid row. Blank lines and
    quoted cells over several lines once moved the reported line numbers."""
    p0, p1 = sorted(manifest["profile_id"].unique())[:2]
    exported = _csv(tmp_path, f"profile_id,stem,field,value,reason,\r\n{p0},,age,64,looks old,\r\n{p1},normal,mask,incorrect,swapped,\r\n")
    read = read_corrections(exported, manifest)
    assert read[["profile_id", "stem", "field", "line"]].values.tolist() == [[p0, "", "age", 2], [p1, "normal", "mask", 3]]
    spaced = _csv(
        tmp_path, f'profile_id,stem,field,value,reason\n\n{p0},,age,64,"grey hair,\nwrinkles"\n\n{p1},,gender,robot,x\n', "spaced.csv"
    )
    with pytest.raises(LabelFileError, match=r"spaced.csv line 6: unknown gender 'robot'"):  # line 6 in an editor
        read_corrections(spaced, manifest)
    extra = _csv(tmp_path, f"profile_id,stem,field,value,reason\n{p0},,age,64,grey, wrinkles\n", "extra.csv")
    with pytest.raises(LabelFileError, match=r"extra.csv line 2: 6 values for the header's 5 columns \(extra: 'wrinkles'\)") as info:
        read_corrections(extra, manifest)
    assert "quote a value that holds a comma" in str(info.value)
    exclusions = _csv(tmp_path, f"profile_id,stem,reason,\n{p0},mask4,other person,\n", "exclusions.csv")
    assert read_exclusions(exclusions, manifest)[["profile_id", "stem"]].values.tolist() == [[p0, "mask4"]]
    unclosed = _csv(tmp_path, f'profile_id,stem,reason\n{p0},,"a poster\n{p1},,two people\n', "unclosed.csv")
    with pytest.raises(LabelFileError, match=r"unclosed.csv line 2: a quoted value opened here is never closed"):
        read_exclusions(unclosed, manifest)  # csv's reader once took every following line into that reason: exclusions lost
    repeated = _csv(tmp_path, f"profile_id,stem,field,value,reason,note,note\n{p0},,age,64,old,a,b\n", "repeated.csv")
    with pytest.raises(LabelFileError, match=r"column names repeated: note"):
        read_corrections(repeated, manifest)
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(f"profile_id,stem,field,value,reason\n{p0},,age,64,caf\xe9\n".encode("latin-1"))
    with pytest.raises(LabelFileError, match=r"latin1.csv: is not UTF-8 text"):
        read_corrections(latin1, manifest)


def test_cleaning_counts_every_reason(manifest: pd.DataFrame, tmp_path: Path):
    data = manifest.copy()
    profiles = sorted(data["profile_id"].unique())
    data.loc[data["image_id"] == f"{profiles[0]}/mask2", "readable"] = False
    dup_source = data.loc[data["image_id"] == f"{profiles[1]}/mask1", "content_hash"].iloc[0]
    data.loc[data["image_id"] == f"{profiles[1]}/mask3", "content_hash"] = dup_source
    data.loc[data["profile_id"] == profiles[2], "age"] = 58
    path = _csv(
        tmp_path, f"profile_id,stem,reason\n{profiles[3]},,a poster not a person\n{profiles[4]},mask5,two people\n", "exclusions.csv"
    )
    kept, removed = clean(data, read_exclusions(path, data), CleaningRules())
    assert len(kept) + len(removed) == len(data)
    why = removed.set_index("image_id")["removal"]
    assert why[f"{profiles[0]}/mask2"] == "unreadable image"
    assert why[f"{profiles[1]}/mask3"] == f"duplicate of {profiles[1]}/mask1"
    assert f"{profiles[1]}/mask1" not in why.index
    assert (removed[removed["profile_id"] == profiles[2]]["removal"] == "age in 57..59").sum() == 7
    assert (removed[removed["profile_id"] == profiles[3]]["removal"] == "exclusions.csv: a poster not a person").sum() == 7
    assert why[f"{profiles[4]}/mask5"] == "exclusions.csv: two people"
    summary = removal_summary(removed).set_index("kind")
    assert summary.loc["exclusions.csv", "images"] == 8 and summary.loc["exclusions.csv", "profiles"] == 2
    assert summary.loc["age in", "profiles"] == 1 and summary.loc["duplicate of", "images"] == 1
    relaxed, _ = clean(
        data,
        read_exclusions(tmp_path / "none.csv", data),
        CleaningRules(drop_unreadable=False, drop_duplicate_images=False, drop_age_band=False),
    )
    assert len(relaxed) == len(data)


@pytest.mark.hostile
def test_bad_exclusion_rows_are_named(manifest: pd.DataFrame, tmp_path: Path):
    path = _csv(tmp_path, "profile_id,stem,reason\nnobody,,x\n" + f"{manifest['profile_id'].iloc[0]},,\n", "exclusions.csv")
    with pytest.raises(LabelFileError) as info:
        read_exclusions(path, manifest)
    assert len(info.value.problems) == 2
    assert "line 2: unknown profile 'nobody'" in str(info.value) and "line 3: no reason given" in str(info.value)
