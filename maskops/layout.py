"""Read a dataset in the competition layout into manifests, one row per image.

    <root>/train/train.csv                       id, gender, race, age, path
    <root>/train/images/<id>_<gender>_<race>_<age>/{mask1..mask5,incorrect_mask,normal}.<ext>
    <root>/eval/info.csv                         ImageID, ans
    <root>/eval/images/<ImageID>
    <root>/mask_only/<wear|incorrect|not_wear>/<photo>   optional: photos whose mask state alone is known

Structural problems (the labels cannot be trusted) are collected and raised together
as one LayoutError. Images that exist but cannot be decoded are kept in the manifest
with readable=False and listed in the quarantine table, so nothing is dropped silently
and the cleaning stage decides what to do. Files are only ever read.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from PIL import Image, UnidentifiedImageError

from maskops.cpus import worker_count
from maskops.csv_tables import read_csv_table
from maskops.labels import (
    MASK_ONLY,
    PROFILE_STEMS,
    STEM_MASK,
    LabelError,
    MaskState,
    age_group,
    encode,
    parse_age,
    parse_gender,
)
from maskops.pixels import IMAGE_EXTENSIONS, upright_size
from maskops.problems import Problem, ProblemReport

TRAIN_CSV = "train/train.csv"
TRAIN_IMAGES = "train/images"
EVAL_CSV = "eval/info.csv"
EVAL_IMAGES = "eval/images"
TRAIN_COLUMNS = ("id", "gender", "race", "age", "path")
EVAL_COLUMNS = ("ImageID", "ans")

TRAIN_MANIFEST_COLUMNS = (
    "image_id", "content_hash", "profile_id", "person_id", "stem", "mask", "gender", "race",
    "age", "age_group", "class_id", "width", "height", "readable", "bytes", "path",
)  # fmt: skip
EVAL_MANIFEST_COLUMNS = (
    "image_id", "content_hash", "stem", "order", "width", "height", "readable", "bytes", "path",
)  # fmt: skip
MASK_ONLY_MANIFEST_COLUMNS = (
    "image_id", "content_hash", "profile_id", "stem", "mask", "class_id", "width", "height", "readable", "bytes", "path",
)  # fmt: skip
QUARANTINE_COLUMNS = ("path", "reason", "fix")
MASK_ONLY_DIR = "mask_only"  # <root>/mask_only/<wear|incorrect|not_wear>/<photo>
STATE_FOLDERS = {MaskState.WEAR: "wear", MaskState.INCORRECT: "incorrect", MaskState.NOT_WEAR: "not_wear"}


class LayoutError(ProblemReport):
    """The dataset does not follow the competition layout; lists every problem found."""

    what = "dataset"

    @property
    def root(self) -> Path:
        return Path(self.source)


@dataclass
class Layout:
    """The manifests read from one dataset root."""

    root: Path
    train: pd.DataFrame
    eval: pd.DataFrame
    quarantine: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(QUARANTINE_COLUMNS)))
    mask_only: pd.DataFrame = field(default_factory=lambda: _frame([], MASK_ONLY_MANIFEST_COLUMNS, MASK_ONLY_DTYPES))


@dataclass(frozen=True)
class ImageFacts:
    content_hash: str
    bytes: int
    width: int | None
    height: int | None
    problem: str | None  # why the image cannot be used, or None


def inspect_image(path: Path) -> ImageFacts:
    """Hash the file's bytes and fully decode it once."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if not data:
        return ImageFacts(digest, 0, None, None, "zero-byte file")
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            width, height = upright_size(img)  # as shown and as cropped (EXIF orientation)
    except UnidentifiedImageError:  # its message names the BytesIO object's address: a different text every run
        return ImageFacts(digest, len(data), None, None, "undecodable image (not a format Pillow reads)")
    except Exception as exc:  # PIL raises many types for corrupt data
        return ImageFacts(digest, len(data), None, None, f"undecodable image ({exc})")
    return ImageFacts(digest, len(data), width, height, None)


def _inspect_all(paths: list[Path], workers: int | None) -> list[ImageFacts]:
    # Hashing and JPEG decoding release the GIL, so threads use every core.
    workers = workers or min(8, 2 * worker_count())
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(inspect_image, paths, chunksize=16))


def _inside(root: Path, path: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def _visible(entries: Iterable[Path], root: Path, problems: list[Problem]) -> list[Path]:
    """The entries that are part of the layout: hidden ones (.DS_Store, macOS "._mask1.jpg" twins) are not, and a name
    that is not UTF-8 is a problem (manifests, store keys and reports hold names as UTF-8 text)."""
    shown = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if not utf8_name(entry.name):
            where = os.fsencode(entry.relative_to(root)).decode("utf-8", "backslashreplace")
            problems.append(
                Problem(where, "its name is not UTF-8 text", "rename it to a UTF-8 name (e.g. convmv -f latin1 -t utf8 --notest)")
            )
            continue
        shown.append(entry)
    return sorted(shown)


def utf8_name(name: str) -> bool:
    """Whether a file name from the file system is UTF-8 (Python keeps the bytes of one that is not as surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _read_csv(root: Path, rel: str, columns: tuple[str, ...], problems: list[Problem]) -> pd.DataFrame | None:
    path = root / rel
    if not path.is_file():
        problems.append(Problem(rel, "file is missing", f"provide {rel} with columns {', '.join(columns)}"))
        return None
    table, found = read_csv_table(path, rel)  # stripped cells, each row with the line it starts on
    if table is None:
        problems.extend(found or [Problem(rel, "is empty: no header row", f"provide {rel} with columns {', '.join(columns)}")])
        return None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        problems.append(
            Problem(
                rel,
                f"missing column(s) {missing}; found {[c for c in table.columns if c != 'line']}",  # line: read_csv_table's own
                f"the header must contain {', '.join(columns)}",
            )
        )
        return None
    return table


def _unsafe_name(name: str) -> bool:
    return not name or name in {".", ".."} or "/" in name or "\\" in name or os.path.isabs(name)


def _parse_profile(folder: str, where: str, problems: list[Problem]) -> tuple[str, int, str, int] | None:
    fields = folder.split("_")
    if len(fields) != 4:
        problems.append(
            Problem(
                where,
                f"folder name {folder!r} has {len(fields)} '_'-separated fields, expected 4",
                "name profile folders <id>_<gender>_<race>_<age>, e.g. 000001_female_Asian_45",
            )
        )
        return None
    pid, gender_text, race, age_text = fields
    ok = True
    try:
        gender = parse_gender(gender_text)
    except LabelError as exc:
        problems.append(Problem(where, f"folder name {folder!r}: {exc}", "use 'male' or 'female' in the folder name and train.csv"))
        ok = False
    try:
        age = parse_age(age_text)
    except LabelError as exc:
        problems.append(
            Problem(where, f"folder name {folder!r}: {exc}", "write the age as a whole number of years in the folder name and train.csv")
        )
        ok = False
    return (pid, int(gender), race, age) if ok else None


def _table_and_folder(
    root: Path, csv: str, columns: tuple[str, ...], folder: str, fix: str, problems: list[Problem]
) -> pd.DataFrame | None:
    """The CSV's table when both it and the image folder are usable (problems are recorded otherwise)."""
    table = _read_csv(root, csv, columns, problems)
    if not (root / folder).is_dir():
        problems.append(Problem(folder, "folder is missing", fix))
        return None
    return table


def _scan_train(root: Path, problems: list[Problem]) -> tuple[list[dict], list[Path]]:
    table = _table_and_folder(root, TRAIN_CSV, TRAIN_COLUMNS, TRAIN_IMAGES, "put one folder per person under train/images/", problems)
    if table is None:
        return [], []
    images_dir = root / TRAIN_IMAGES

    rows: list[dict] = []
    paths: list[Path] = []
    listed: set[str] = set()
    id_lines: dict[str, list[int]] = {}
    path_lines: dict[str, list[int]] = {}
    for rec in table.to_dict("records"):
        line = rec["line"]
        where = f"{TRAIN_CSV} line {line}"
        folder = rec["path"]
        id_lines.setdefault(rec["id"], []).append(line)
        path_lines.setdefault(folder, []).append(line)
        if _unsafe_name(folder):
            problems.append(
                Problem(
                    where,
                    f"path {folder!r} is not a plain folder name inside {TRAIN_IMAGES}",
                    "use the bare folder name, without '/', '..' or an absolute path",
                )
            )
            continue
        listed.add(folder)
        parsed = _parse_profile(folder, where, problems)
        if parsed is None:
            continue
        pid, gender, race, age = parsed
        disagreements = []
        if rec["id"] != pid:
            disagreements.append(f"id {rec['id']!r} vs {pid!r}")
        try:
            if int(parse_gender(rec["gender"])) != gender:
                disagreements.append(f"gender {rec['gender']!r} vs folder")
        except LabelError as exc:
            problems.append(Problem(where, str(exc), "use 'male' or 'female'"))
        if rec["race"] != race:
            disagreements.append(f"race {rec['race']!r} vs {race!r}")
        try:
            if parse_age(rec["age"]) != age:
                disagreements.append(f"age {rec['age']!r} vs {age}")
        except LabelError as exc:
            problems.append(Problem(where, str(exc), "write the age as a whole number of years"))
        if disagreements:
            problems.append(
                Problem(
                    where,
                    f"row disagrees with its folder name {folder!r}: {'; '.join(disagreements)}",
                    "make train.csv and the folder name say the same (record label fixes in labels/corrections.csv, not by renaming)",
                )
            )
        profile_dir = images_dir / folder
        if not profile_dir.is_dir():
            missing = Problem(f"{TRAIN_IMAGES}/{folder}", "profile folder listed in train.csv does not exist", "restore the folder or delete its row from train.csv")  # fmt: skip
            problems.append(missing)
            continue
        if not _inside(root, profile_dir):
            problems.append(
                Problem(
                    f"{TRAIN_IMAGES}/{folder}",
                    f"resolves outside the dataset root ({profile_dir.resolve()})",
                    "copy the images into the dataset instead of linking to them",
                )
            )
            continue
        by_stem: dict[str, list[Path]] = {}
        for f in _visible(profile_dir.iterdir(), root, problems):
            by_stem.setdefault(f.stem, []).append(f)
        rel_dir = f"{TRAIN_IMAGES}/{folder}"
        for stem, files in by_stem.items():
            if stem not in STEM_MASK:
                problems.append(
                    Problem(
                        f"{rel_dir}/{files[0].name}",
                        f"unexpected file; a profile holds exactly {', '.join(PROFILE_STEMS)}",
                        "move it out of the dataset",
                    )
                )
            elif len(files) > 1:
                problems.append(
                    Problem(rel_dir, f"{len(files)} files for {stem!r}: {', '.join(f.name for f in files)}", "keep one file per stem")
                )
        missing = [s for s in PROFILE_STEMS if s not in by_stem]
        if missing:
            problems.append(
                Problem(
                    rel_dir,
                    f"missing image(s) {', '.join(missing)}",
                    f"a profile holds 7 images ({', '.join(PROFILE_STEMS)}); add them or delete the profile and its train.csv row",
                )
            )
        for stem in PROFILE_STEMS:
            files = by_stem.get(stem, [])
            if len(files) != 1:
                continue
            f = files[0]
            rel = f"{rel_dir}/{f.name}"
            if f.suffix.lower() not in IMAGE_EXTENSIONS:
                problems.append(
                    Problem(rel, f"extension {f.suffix!r} is not an image type", f"use one of {', '.join(sorted(IMAGE_EXTENSIONS))}")
                )
                continue
            if not f.is_file() or not _inside(root, f):
                fix = "replace the link with the image file itself" if f.is_symlink() else "replace it with the image file"
                problems.append(Problem(rel, "is not a regular file inside the dataset root", fix))
                continue
            mask = STEM_MASK[stem]
            grp = age_group(age)
            rows.append({
                "image_id": f"{folder}/{stem}", "profile_id": folder, "person_id": pid, "stem": stem,
                "mask": int(mask), "gender": gender, "race": race, "age": age, "age_group": int(grp),
                "class_id": encode(mask, gender, grp), "path": rel,
            })  # fmt: skip
            paths.append(f)

    repeated = (
        (id_lines, "id {!r} is used {} times", "give every person a unique id (or merge the rows if they are the same person)"),
        (path_lines, "path {!r} is listed {} times", "list each profile folder once"),
    )
    for lines_by_key, message, fix in repeated:
        for key, lines in lines_by_key.items():
            if len(lines) > 1:
                problems.append(Problem(f"{TRAIN_CSV} lines {', '.join(map(str, lines))}", message.format(key, len(lines)), fix))
    for entry in _visible(images_dir.iterdir(), root, problems):
        if entry.name in listed:
            continue
        if entry.is_dir():
            problems.append(
                Problem(
                    f"{TRAIN_IMAGES}/{entry.name}",
                    "profile folder is not listed in train.csv",
                    "add a train.csv row for it or move it out of the dataset",
                )
            )
        else:
            problems.append(
                Problem(
                    f"{TRAIN_IMAGES}/{entry.name}", "unexpected file; train/images holds only profile folders", "move it out of the dataset"
                )
            )
    return rows, paths


def _scan_eval(root: Path, problems: list[Problem], quarantine: list[dict]) -> tuple[list[dict], list[Path]]:
    if not (root / "eval").exists():
        return [], []
    table = _table_and_folder(root, EVAL_CSV, EVAL_COLUMNS, EVAL_IMAGES, "put the evaluation images under eval/images/", problems)
    if table is None:
        return [], []
    images_dir = root / EVAL_IMAGES
    rows, paths, listed = [], [], set()
    counts = Counter(table["ImageID"])
    for i, (line, name) in enumerate(zip(table["line"], table["ImageID"], strict=True)):
        where = f"{EVAL_CSV} line {line}"
        if counts[name] > 1:
            problems.append(Problem(where, f"ImageID {name!r} is listed {counts[name]} times", "list each evaluation image once"))
            continue
        if _unsafe_name(name):
            problems.append(
                Problem(
                    where,
                    f"ImageID {name!r} is not a plain file name inside {EVAL_IMAGES}",
                    "use the bare file name, without '/', '..' or an absolute path",
                )
            )
            continue
        listed.add(name)
        f = images_dir / name
        if not f.is_file():
            fix = "restore the image; the submission needs a prediction for every row of info.csv"
            what = "is not a regular file (a pipe, device or folder)" if f.exists() else "is missing"
            problems.append(Problem(f"{EVAL_IMAGES}/{name}", f"evaluation image listed in info.csv {what}", fix))
            continue
        if not _inside(root, f):
            problems.append(
                Problem(f"{EVAL_IMAGES}/{name}", "resolves outside the dataset root", "replace the link with the image file itself")
            )
            continue
        rows.append({"image_id": f"eval/{name}", "stem": name, "order": i, "path": f"{EVAL_IMAGES}/{name}"})
        paths.append(f)
    for entry in _visible(images_dir.iterdir(), root, problems):
        if entry.name not in listed and entry.name not in counts:
            quarantine.append(
                {
                    "path": f"{EVAL_IMAGES}/{entry.name}",
                    "reason": "not listed in eval/info.csv; ignored",
                    "fix": "add it to info.csv or move it out of the dataset",
                }
            )
    return rows, paths


def _scan_mask_only(root: Path, problems: list[Problem]) -> tuple[list[dict], list[Path]]:
    """<root>/mask_only/<state>/<photo>: photos whose mask state alone is known (no gender, no age), e.g. real faces
    nobody labelled; they train the mask task (maskops.labels.MASK_ONLY) and are never validated on."""
    folder = root / MASK_ONLY_DIR
    if not folder.exists():
        return [], []
    states = {name: state for state, name in STATE_FOLDERS.items()}
    fix_folder = f"put each photo in {MASK_ONLY_DIR}/<{'|'.join(states)}>/ by the mask state it shows"
    if not folder.is_dir():
        problems.append(Problem(MASK_ONLY_DIR, "a file where the optional mask-only folder belongs", fix_folder))
        return [], []
    rows, paths = [], []
    for entry in _visible(folder.iterdir(), root, problems):
        rel = f"{MASK_ONLY_DIR}/{entry.name}"
        if not entry.is_dir() or entry.name not in states:
            what = "a file" if not entry.is_dir() else "a folder"
            problems.append(Problem(rel, f"{what} that is not one of the mask-state folders {sorted(states)}", fix_folder))
            continue
        for f in _visible(entry.iterdir(), root, problems):
            where = f"{rel}/{f.name}"
            if not f.is_file() or f.suffix.lower() not in IMAGE_EXTENSIONS:
                problems.append(Problem(where, "not an image file", f"{fix_folder}; image types: {', '.join(sorted(IMAGE_EXTENSIONS))}"))
                continue
            if not _inside(root, f):
                problems.append(Problem(where, "resolves outside the dataset root", "replace the link with the image file itself"))
                continue
            mask = int(states[entry.name])
            rows.append({"image_id": where, "profile_id": MASK_ONLY_DIR, "stem": f.stem, "mask": mask, "class_id": MASK_ONLY + mask,
                         "path": where})  # fmt: skip
            paths.append(f)
    return rows, paths


def _with_facts(
    rows: list[dict], paths: list[Path], workers: int | None, quarantine: list[dict],
    fix: str = "replace the file with a readable image, or exclude it in labels/exclusions.csv",
) -> None:  # fmt: skip
    for row, facts in zip(rows, _inspect_all(paths, workers), strict=True):
        row.update(
            content_hash=facts.content_hash, bytes=facts.bytes, width=facts.width, height=facts.height, readable=facts.problem is None
        )
        if facts.problem:
            quarantine.append({"path": row["path"], "reason": facts.problem, "fix": fix})


def _mask_only_conflicts(mask_only: list[dict], train: list[dict], evaluation: list[dict]) -> list[Problem]:
    """A mask-only photo that is also under another mask state (two labels for one picture), or that is a training or
    evaluation photo (it would train on what validates or is scored)."""
    problems, states = [], {}
    for row in mask_only:
        if row["readable"]:
            states.setdefault(row["content_hash"], []).append(row)
    for rows in states.values():
        if len({r["mask"] for r in rows}) > 1:
            others = ", ".join(r["path"] for r in rows[1:])
            problems.append(Problem(rows[0]["path"], f"the same photo is also under another mask state: {others}",
                                    "keep the photo only in the folder of the mask state it shows"))  # fmt: skip
    elsewhere = {r["content_hash"]: r["path"] for r in (*train, *evaluation) if r["readable"]}
    for content_hash, rows in states.items():
        if content_hash in elsewhere:
            problems.append(Problem(rows[0]["path"], f"the same photo is {elsewhere[content_hash]} of the dataset",
                                    "remove it from mask_only/: a training or evaluation photo must not also train as a mask-only photo"))  # fmt: skip
    return problems


def _frame(rows: list[dict], columns: tuple[str, ...], dtypes: dict[str, str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(columns))
    return frame.astype(dtypes)


TRAIN_DTYPES = {
    "image_id": "string", "content_hash": "string", "profile_id": "string", "person_id": "string",
    "stem": "string", "mask": "int8", "gender": "int8", "race": "string", "age": "int16",
    "age_group": "int8", "class_id": "int8", "width": "Int32", "height": "Int32",
    "readable": "bool", "bytes": "int64", "path": "string",
}  # fmt: skip
MASK_ONLY_DTYPES = {
    "image_id": "string", "content_hash": "string", "profile_id": "string", "stem": "string", "mask": "int8", "class_id": "int8",
    "width": "Int32", "height": "Int32", "readable": "bool", "bytes": "int64", "path": "string",
}  # fmt: skip
EVAL_DTYPES = {
    "image_id": "string", "content_hash": "string", "stem": "string", "order": "int32",
    "width": "Int32", "height": "Int32", "readable": "bool", "bytes": "int64", "path": "string",
}  # fmt: skip


def scan_competition(root: str | Path, *, workers: int | None = None) -> Layout:
    """Read and check a dataset in the competition layout.

    Raises LayoutError listing every structural problem; undecodable images are
    quarantined (kept with readable=False) rather than raised.
    """
    root = Path(root)
    if not root.is_dir():
        what = "dataset root is a file, not a folder" if root.exists() else "dataset root does not exist"
        raise LayoutError(root, [Problem(str(root), what, "point the dataset root at a folder holding train/ (and optionally eval/)")])
    problems: list[Problem] = []
    quarantine: list[dict] = []
    train_rows, train_paths = _scan_train(root, problems)
    eval_rows, eval_paths = _scan_eval(root, problems, quarantine)
    mask_only_rows, mask_only_paths = _scan_mask_only(root, problems)
    if problems:
        raise LayoutError(root, problems)
    _with_facts(train_rows, train_paths, workers, quarantine)
    _with_facts(eval_rows, eval_paths, workers, quarantine)
    _with_facts(mask_only_rows, mask_only_paths, workers, quarantine, "replace the file with a readable image, or delete it")
    if problems := _mask_only_conflicts(mask_only_rows, train_rows, eval_rows):
        raise LayoutError(root, problems)
    train = _frame(train_rows, TRAIN_MANIFEST_COLUMNS, TRAIN_DTYPES)
    train = train.sort_values(["profile_id", "stem"], ignore_index=True)
    evaluation = _frame(eval_rows, EVAL_MANIFEST_COLUMNS, EVAL_DTYPES)
    mask_only = _frame(mask_only_rows, MASK_ONLY_MANIFEST_COLUMNS, MASK_ONLY_DTYPES).sort_values("image_id", ignore_index=True)
    return Layout(root, train, evaluation, pd.DataFrame(quarantine, columns=list(QUARANTINE_COLUMNS)), mask_only)


def fingerprint(manifest: pd.DataFrame, columns: tuple[str, ...] = ("image_id", "content_hash", "class_id")) -> str:
    """A short, order-independent hash of what a manifest says: its data version."""
    present = [c for c in columns if c in manifest.columns]
    # An empty table (no eval/ folder, every profile excluded) has a version too; agg() of no rows is no Series.
    rows = sorted("|".join(row) for row in manifest[present].astype(str).itertuples(index=False, name=None))
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16]


def _unreadable(error: OSError) -> None:
    raise LayoutError(error.filename, [Problem(str(error.filename), f"cannot be listed ({error.strerror})",
                                               "give the pipeline's user read access to it")]) from error  # fmt: skip


def _fingerprint_folder(folder: str, root: Path, inside: Path, digest, followed: set[str]) -> None:
    """Every visible file under `folder` — name, size, modification time — in sorted order, its files before its
    subfolders (for a dataset without links, byte for byte what `os.walk` with sorted names gave). A link counts by its
    target's name; a linked folder is walked, and a linked photo counts by its target's size and time, when the target
    is inside the root (scan() reads through such links and names the others as problems); each folder link at most
    once, so link loops end. One `lstat` a file, as before links were followed. `inside`: the root resolved."""
    try:
        with os.scandir(folder) as listing:
            entries = sorted((e for e in listing if not e.name.startswith(".")), key=lambda e: e.name)  # a .DS_Store starts nothing
    except OSError as error:  # a folder it cannot list: no version
        _unreadable(error)
    folders = []
    for entry in entries:
        rel = os.fsencode(os.path.relpath(entry.path, root))  # a name that is not UTF-8 too
        link = entry.is_symlink()
        if link:
            digest.update(rel + b"\0->" + os.fsencode(os.readlink(entry.path)) + b"\n")
        if entry.is_dir():  # follows links
            target = os.path.realpath(entry.path) if link else None
            if target is None or (Path(target).is_relative_to(inside) and target not in followed):
                if target:
                    followed.add(target)
                folders.append(entry.path)
            continue
        stat = entry.stat(follow_symlinks=False)  # a dangling link still has a size and a time
        if link and Path(os.path.realpath(entry.path)).is_relative_to(inside):
            with contextlib.suppress(OSError):
                stat = os.stat(entry.path)
        digest.update(rel + f"\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    for path in folders:
        _fingerprint_folder(path, root, inside, digest, followed)


def source_fingerprint(root: str | os.PathLike) -> str:
    """A cheap fingerprint of a dataset root: the two CSVs' bytes and every image's name, size and
    modification time (the mask-only photos' too; behind links that stay inside the root as well). It changes when files
    are added, removed, replaced or edited, without reading the images (a few milliseconds per thousand files), so a
    sensor can poll it. Not seen: a photo replaced by one of the same size with its time kept (`cp -p`, `rsync -a`) —
    counting inode times too would retrain everything after a restore from backup."""
    root = Path(root)
    if not root.is_dir():  # unmounted, moved, mid-sync: no version at all, not the version of an empty dataset
        raise LayoutError(root, [Problem(str(root), "the dataset folder is missing or not a folder",
                                         "mount or restore it; nothing is observed until it is back")])  # fmt: skip
    digest = hashlib.sha256()
    for name in (TRAIN_CSV, EVAL_CSV):
        path = root / name
        digest.update(f"{name}\0".encode() + (path.read_bytes() if path.is_file() else b"<missing>"))
    optional = [root / MASK_ONLY_DIR] if (root / MASK_ONLY_DIR).exists() else []  # absent: the fingerprint of before
    for folder in (root / TRAIN_IMAGES, root / EVAL_IMAGES, *optional):
        if not folder.is_dir():
            digest.update(f"{folder.name}\0<missing>".encode())
            continue
        _fingerprint_folder(str(folder), root, root.resolve(), digest, set())
    return digest.hexdigest()[:16]
