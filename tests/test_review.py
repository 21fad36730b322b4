"""The demo reviewer writes corrections from the injected noise, and never overwrites a person's files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from maskops.cleaning import read_exclusions
from maskops.corrections import read_corrections
from maskops.layout import scan_competition
from maskops.synth.people import SynthConfig, synthesize
from maskops.synth.reviewer import demo_review


def test_reviewer_catches_most_errors(tmp_path: Path):
    root = tmp_path / "data"
    synthesize(root, SynthConfig(profiles=20, seed=9, gender_noise=0.2, age_noise=0.2, mask_swap_noise=0.2), workers=2)
    labels = tmp_path / "labels"
    summary = demo_review(root, labels, catch_rate=0.7)
    noise = pd.read_csv(root / "ground_truth/label_noise.csv", dtype=str, keep_default_na=False)
    assert summary["caught_profiles"] == round(0.7 * noise["profile_id"].nunique())
    manifest = scan_competition(root).train
    corrections = read_corrections(labels / "corrections.csv", manifest)  # valid by our own rules
    assert set(corrections["profile_id"]) < set(noise["profile_id"])
    assert len(read_exclusions(labels / "exclusions.csv", manifest)) == 2
    (labels / "corrections.csv").write_text("profile_id,stem,field,value,reason\n")
    demo_review(root, labels)
    assert (labels / "corrections.csv").read_text() == "profile_id,stem,field,value,reason\n"
