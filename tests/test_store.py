"""The content-addressed image store."""

from __future__ import annotations

from pathlib import Path

from maskops.files import write_atomic
from maskops.store import ImageSource, ImageStore, derive_key


def test_keys_depend_on_everything_that_made_the_image():
    base = derive_key("abc", "crop", {"margin": 40, "size": 256}, "1")
    assert base == derive_key("abc", "crop", {"size": 256, "margin": 40}, "1")  # order does not matter
    assert base != derive_key("abd", "crop", {"margin": 40, "size": 256}, "1")
    assert base != derive_key("abc", "crop", {"margin": 41, "size": 256}, "1")
    assert base != derive_key("abc", "generate", {"margin": 40, "size": 256}, "1")
    assert base != derive_key("abc", "crop", {"margin": 40, "size": 256}, "2")


def test_put_has_record_and_atomic_completion(tmp_path: Path):
    store = ImageStore(tmp_path / "store")
    key = derive_key("x", "crop", {}, "1")
    assert not store.has(key)
    store.put(key, b"jpeg bytes", {"face_found": True})
    assert store.has(key) and store.record(key) == {"face_found": True} and store.image_bytes(key) == b"jpeg bytes"
    assert store.local_path(key) == tmp_path / "store" / key[:2] / f"{key}.jpg"
    # an image without its record (a crash between the two writes) is not an entry
    other = derive_key("y", "crop", {}, "1")
    write_atomic(store._path(other, ".jpg"), b"half")
    assert not store.has(other)
    assert not [p for p in (tmp_path / "store").rglob("*.tmp")]


def test_any_fsspec_location_works():
    store = ImageStore("memory://maskops-test-store")
    key = derive_key("x", "crop", {}, "1")
    store.put(key, b"bytes", {"a": 1})
    assert store.has(key) and store.record(key) == {"a": 1}
    assert store.local_path(key) is None


def test_image_source_opens_dataset_and_store_paths(tiny_dataset: Path, tmp_path: Path):
    store = ImageStore(tmp_path / "store")
    source = ImageSource(tiny_dataset, store)
    first = next((tiny_dataset / "train/images").iterdir())
    image = source.open_rgb(f"train/images/{first.name}/normal.jpg")
    assert image.size == (384, 512) and image.mode == "RGB"
    key = derive_key("z", "crop", {}, "1")
    store.put(key, (first / "normal.jpg").read_bytes(), {})
    assert source.open_rgb(store.uri(key)).size == (384, 512)
