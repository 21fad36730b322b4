"""The training engine on tiny images: heads, losses, freezing, determinism and resume."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from maskops.data import class_counts
from maskops.labels import MASK_ONLY, mask_only_label
from maskops.losses import Criterion, FocalLoss, SoftF1Loss, build_loss
from maskops.models import HEAD_MODES, FreezeSpec, MaskNet, ProbabilityModel, class_probabilities, freeze
from maskops.train import PRESETS, CheckpointWriter, TrainConfig, config_from, train_model

TINY = TrainConfig(backbone="resnet10t", image_size=32, epochs=2, batch_size=16, lr=3e-3, warmup_epochs=0.5, seed=1)


def _data(n: int = 64, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """Images whose colour encodes the class, so a couple of steps can learn something."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 18, n)
    images = rng.integers(0, 40, (n, 3, 32, 32)).astype(np.uint8)
    for i, y in enumerate(labels):
        images[i, y % 3] += np.uint8(60 + 10 * (y // 3))
    return torch.from_numpy(images), labels


@pytest.mark.parametrize("mode", HEAD_MODES)
def test_heads_shapes_and_recombination(mode: str):
    net = MaskNet("resnet10t", mode)
    outputs = net(torch.randn(4, 3, 32, 32))
    expected = {"class": 18} if mode == "multiclass" else {"mask": 3, "gender": 2, "age": 3}
    assert {k: v.shape for k, v in outputs.items()} == {k: (4, n) for k, n in expected.items()}
    probs = class_probabilities(outputs)
    assert probs.shape == (4, 18) and torch.allclose(probs.sum(1), torch.ones(4), atol=1e-5)
    assert len(net.backbones) == (3 if mode == "soft" else 1)


def test_weights_saved_when_the_multiclass_head_was_named_class_still_load(tmp_path: Path):
    """Checkpoints and registered weights from before the head's rename (heads.class.* -> heads.classes.*) load into
    today's model and answer the same."""
    from maskops.models import load_weights, save_weights

    torch.manual_seed(0)
    model = ProbabilityModel(MaskNet("resnet10t", "multiclass")).eval()
    old = {k.replace("net.heads.classes.", "net.heads.class."): v for k, v in model.state_dict().items()}
    assert "net.heads.class.weight" in old
    again = ProbabilityModel(MaskNet("resnet10t", "multiclass")).eval()
    again.load_state_dict(old, strict=True)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x))
    from safetensors.torch import save_file

    save_weights(model, tmp_path / "new.safetensors", "resnet10t", "multiclass")
    save_file(
        {k: v.contiguous() for k, v in old.items()},
        str(tmp_path / "old.safetensors"),
        metadata={"backbone": "resnet10t", "head": "multiclass"},
    )
    with torch.no_grad():
        torch.testing.assert_close(load_weights(tmp_path / "old.safetensors")(x), load_weights(tmp_path / "new.safetensors")(x))


def test_task_recombination_is_the_product_in_class_order():
    outputs = {
        "mask": torch.log(torch.tensor([[0.7, 0.2, 0.1]])),
        "gender": torch.log(torch.tensor([[0.4, 0.6]])),
        "age": torch.log(torch.tensor([[0.5, 0.3, 0.2]])),
    }
    probs = class_probabilities(outputs)[0]
    assert probs[6 * 1 + 3 * 1 + 2].item() == pytest.approx(0.2 * 0.6 * 0.2, rel=1e-5)  # incorrect/female/>=60 = 11
    assert probs[0].item() == pytest.approx(0.7 * 0.4 * 0.5, rel=1e-5)


def test_hard_sharing_runs_the_backbone_once():
    net = MaskNet("resnet10t", "hard")
    calls = []
    net.backbones[0].register_forward_hook(lambda *_: calls.append(1))
    net(torch.randn(2, 3, 32, 32))
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("loss", "head"), [("ce", "multiclass"), ("label_smoothing", "hard"), ("focal", "soft"), ("f1", "multiclass"), ("focal", "hard")]
)
def test_each_loss_and_head_learns(loss: str, head: str):
    images, labels = _data()
    cfg = replace(TINY, loss=loss, head=head, epochs=3, focal_alpha="inverse_frequency" if loss == "focal" else "none")
    result = train_model(images, labels, images[:24], labels[:24], cfg)
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < losses[0], losses
    assert result.val_probabilities.shape == (24, 18)


def test_focal_loss_equals_cross_entropy_when_gamma_is_zero():
    logits, target = torch.randn(32, 18), torch.randint(0, 18, (32,))
    ce = torch.nn.functional.cross_entropy(logits, target)
    assert FocalLoss(gamma=0.0)(logits, target).item() == pytest.approx(ce.item(), rel=1e-6)
    assert build_loss("focal", 18, gamma=0.0, alpha=1.0)(logits, target).item() == pytest.approx(ce.item(), rel=1e-6)


def test_focal_loss_is_per_sample_with_per_class_alpha():
    logits = torch.tensor([[4.0, 0.0], [0.0, 0.0]])
    target = torch.tensor([0, 1])
    alpha = torch.tensor([0.25, 0.75])
    p = logits.softmax(1)[torch.arange(2), target]
    expected = (alpha[target] * (1 - p) ** 2 * -p.log()).mean()
    assert FocalLoss(gamma=2.0, alpha=alpha)(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)
    batch_mean_version = (1 - torch.exp(-torch.nn.functional.cross_entropy(logits, target))) ** 2 * torch.nn.functional.cross_entropy(
        logits, target
    )
    assert FocalLoss(gamma=2.0)(logits, target).item() != pytest.approx(batch_mean_version.item(), rel=1e-3)  # not the original's rescaling


def test_soft_f1_is_low_for_perfect_predictions():
    target = torch.arange(18)
    assert SoftF1Loss()(torch.eye(18) * 50, target).item() < 1e-3
    assert SoftF1Loss()(torch.zeros(18, 18), target).item() > 0.9


def test_frozen_weights_stay_bit_identical_after_a_step():
    net = MaskNet("resnet10t", "hard")
    trainable = freeze(net, FreezeSpec(stem=True, stages=2))
    frozen = {n: p.detach().clone() for n, p in net.named_parameters() if not p.requires_grad}
    assert frozen and trainable < sum(p.numel() for p in net.parameters())
    assert all(n.startswith("backbones.0.") for n in frozen)
    optimizer = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=0.1)
    loss = sum(v.sum() for v in net(torch.randn(4, 3, 32, 32)).values())
    loss.backward()
    optimizer.step()
    assert all(torch.equal(p, frozen[n]) for n, p in net.named_parameters() if n in frozen)
    moved = [n for n, p in net.named_parameters() if p.requires_grad and "layer4" in n]
    assert moved  # later stages still train


def test_a_mask_only_label_trains_the_mask_task_on_the_marginal_and_nothing_else():
    """Photos whose mask state alone is known (MASK_ONLY + mask): with one 18-class head their loss is the cross
    entropy of the mask state's marginal (the sum of its six classes' probabilities); with task heads only the mask head
    sees them; fully labelled photos in the same batch keep their usual loss, averaged over the batch."""
    torch.manual_seed(0)
    logits = torch.randn(6, 18, requires_grad=True)
    target = torch.tensor([0, 17, mask_only_label(2), mask_only_label(0), 9, mask_only_label(1)])
    partial = target >= MASK_ONLY
    criterion = Criterion("multiclass", [1] * 18, mask_only=True, name="ce")
    marginal = logits.softmax(1).reshape(6, 3, 6).sum(2)
    expected_partial = -marginal[partial].gather(1, (target[partial] - MASK_ONLY)[:, None]).log().sum()
    expected_full = torch.nn.functional.cross_entropy(logits[~partial], target[~partial], reduction="sum")
    loss = criterion({"class": logits}, target)
    assert loss.item() == pytest.approx(((expected_partial + expected_full) / 6).item(), rel=1e-5)
    # a batch of fully labelled photos is scored as before, with or without mask_only
    full = target[~partial]
    plain = Criterion("multiclass", [1] * 18, name="ce")({"class": logits[~partial]}, full)
    assert criterion({"class": logits[~partial]}, full).item() == pytest.approx(plain.item(), rel=1e-6)
    # task heads: the gender and age logits of mask-only photos get no gradient
    outputs = {t: torch.randn(6, n, requires_grad=True) for t, n in (("mask", 3), ("gender", 2), ("age", 3))}
    Criterion("hard", [1] * 18, mask_only=True, name="focal")(outputs, target).backward()
    assert outputs["mask"].grad[partial].abs().sum() > 0
    assert outputs["gender"].grad[partial].abs().sum() == 0 and outputs["age"].grad[partial].abs().sum() == 0
    assert outputs["gender"].grad[~partial].abs().sum() > 0
    # only the 18 classes are counted
    assert class_counts(target.numpy()) == class_counts(target[~partial].numpy()) and sum(class_counts(target.numpy())) == 3


@pytest.mark.parametrize("head", ["hard", "soft"])
def test_a_batch_of_mask_only_photos_still_reaches_every_parameter(head: str):
    """Data-parallel training reduces the gradients of every parameter on every process: a process whose share holds
    only mask-only photos must still give the gender and age heads a (zero) gradient, or the reduction hangs."""
    net = MaskNet("resnet10t", head)
    target = torch.full((4,), mask_only_label(1))
    Criterion(head, [1] * 18, mask_only=True, name="ce")(net(torch.randn(4, 3, 32, 32)), target).backward()
    missing = [name for name, p in net.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing and float(net.heads["gender"].weight.grad.abs().sum()) == 0.0


@pytest.mark.parametrize("head", ["multiclass", "hard"])
def test_training_with_mask_only_photos_learns_the_mask_from_them(head: str):
    """A training set with mask-only photos (gender and age unknown) trains; its mask-only photos drive the mask task."""
    images, labels = _data(96)
    partial = labels.copy()
    partial[48:] = MASK_ONLY + labels[48:] // 6  # half the photos keep only their mask state
    result = train_model(images, partial, images[:24], labels[:24], replace(TINY, head=head, epochs=3))
    assert result.val_probabilities.shape == (24, 18) and np.isfinite(result.val_probabilities).all()
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_training_is_deterministic_on_cpu():
    images, labels = _data()
    a = train_model(images, labels, images[:16], labels[:16], TINY)
    b = train_model(images, labels, images[:16], labels[:16], TINY)
    assert all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values(), strict=True))


def test_the_loop_runs_channels_last_and_hands_back_the_default_layout():
    """Batches reach the network channels-last on every device (on the CPU too: oneDNN's depthwise convolutions are
    1.4x faster in it); the trained model comes back in the default layout, as saving and export expect."""
    images, labels = _data()
    layouts: list[bool] = []
    original = MaskNet.forward

    def forward(self, x):
        layouts.append(x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous())
        return original(self, x)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MaskNet, "forward", forward)
        result = train_model(images, labels, images[:16], labels[:16], replace(TINY, epochs=1))
    assert layouts and all(layouts)  # every training step and every validation batch
    assert all(p.is_contiguous() for p in result.model.parameters())


class Crash(RuntimeError):
    pass


def test_checkpoints_are_written_behind_training_as_they_were_when_saved(tmp_path: Path):
    """The next epoch trains while the last checkpoint is written: the file holds the state as it was when saved,
    leaving the writer (a crash included) waits for the write, and a write that failed fails the training."""
    path, weights = tmp_path / "last.pt", torch.zeros(5_000_000)  # 20 MB: a write that takes a while
    with CheckpointWriter(path) as writer:
        writer.save({"weights": weights, "epoch": 0})
        weights += 1  # the next epoch's updates, in place, while the write may still run
    assert torch.equal(torch.load(path)["weights"], torch.zeros(5_000_000))
    with pytest.raises(Crash), CheckpointWriter(path) as writer:
        writer.save({"weights": weights, "epoch": 1})
        raise Crash("power cut")
    assert torch.load(path)["epoch"] == 1 and not list(tmp_path.glob(".*.tmp"))  # written whole before the crash left
    (tmp_path / "a-file").write_text("")
    with pytest.raises(OSError), CheckpointWriter(tmp_path / "a-file" / "last.pt") as writer:
        writer.save({"epoch": 2})


def test_resume_continues_from_the_saved_epoch_with_identical_state(tmp_path: Path):
    images, labels = _data()
    cfg = replace(TINY, epochs=3)
    straight = train_model(images, labels, images[:16], labels[:16], cfg, tmp_path / "straight")

    def crash_reporting_the_second(epoch: int, _metrics: dict) -> None:
        if epoch == 1:
            raise Crash("power cut")

    with pytest.raises(Crash):
        train_model(images, labels, images[:16], labels[:16], cfg, tmp_path / "crashed", on_epoch=crash_reporting_the_second)
    resumed = train_model(images, labels, images[:16], labels[:16], cfg, tmp_path / "crashed")
    # epoch 1 is trained again: its checkpoint is written only after its metrics were reported (a kill in between
    # would otherwise leave an epoch in the checkpoint whose metrics never reached MLflow)
    assert resumed.resumed_from_epoch == 1 and [h["epoch"] for h in resumed.history] == [0, 1, 2]
    assert all(torch.equal(x, y) for x, y in zip(straight.model.state_dict().values(), resumed.model.state_dict().values(), strict=True))
    assert resumed.history[-1]["train_loss"] == pytest.approx(straight.history[-1]["train_loss"])
    # other settings or other data: start over rather than resume someone else's run
    fresh = train_model(images, labels, images[:16], labels[:16], replace(cfg, lr=1e-3), tmp_path / "crashed")
    assert fresh.resumed_from_epoch is None


def test_a_checkpoint_resumes_only_on_the_photos_it_was_trained_on(tmp_path: Path):
    """The data fingerprint once sampled every n-th image: a third of the photos replaced (same labels) was resumed into."""
    from maskops.train import data_fingerprint, will_resume

    images, labels = _data(200)
    cfg = replace(TINY, epochs=3)

    def crash(epoch: int, _metrics: dict) -> None:
        if epoch == 1:
            raise Crash("power cut")

    with pytest.raises(Crash):
        train_model(images, labels, images[:16], labels[:16], cfg, tmp_path, on_epoch=crash)
    assert will_resume(tmp_path, cfg, data_fingerprint(images, labels, images[:16], labels[:16]))
    assert not will_resume(tmp_path, replace(cfg, seed=2), data_fingerprint(images, labels, images[:16], labels[:16]))
    replaced = images.clone()
    replaced[1::3] = _data(200, seed=7)[0][1::3]  # other photos, the same labels
    assert not will_resume(tmp_path, cfg, data_fingerprint(replaced, labels, images[:16], labels[:16]))
    assert train_model(replaced, labels, images[:16], labels[:16], cfg, tmp_path).resumed_from_epoch is None


def test_class_weights_that_would_be_ignored_are_refused():
    """They were silently ignored with the F1 loss and with a focal alpha (the seed-best preset's 0.25)."""
    with pytest.raises(ValueError, match="class_weights has no effect with loss 'f1'"):
        replace(TINY, loss="f1", class_weights=True)
    with pytest.raises(ValueError, match=r"focal_alpha '0\.25' weights the classes itself"):
        replace(TINY, loss="focal", focal_alpha="0.25", class_weights=True)
    replace(TINY, loss="focal", class_weights=True)  # without an alpha they are the focal loss's alpha


def test_patience_below_one_is_refused():
    """patience 0 once stopped before the first epoch: an untrained model was logged, and registered if it passed the floor."""
    with pytest.raises(ValueError, match="patience must be >= 1"):
        replace(TINY, patience=0)


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _garbage(data: bytes) -> bytes:
    return np.random.default_rng(0).bytes(len(data))


def _another_model(data: bytes) -> bytes:
    """A readable checkpoint under the same settings whose weights belong to another network (keys and shapes differ)."""
    import io

    state = torch.load(io.BytesIO(data), weights_only=False)
    state["model"] = MaskNet("resnet10t", "soft").state_dict()
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


@pytest.mark.parametrize("damage", [_truncated, _garbage, _another_model])
def test_a_checkpoint_that_cannot_be_resumed_is_moved_aside_and_training_starts_fresh(tmp_path: Path, damage, caplog):
    images, labels = _data(32)
    cfg = replace(TINY, epochs=1)
    fresh = train_model(images, labels, images[:8], labels[:8], cfg, tmp_path / "fresh")
    folder = tmp_path / "damaged"
    folder.mkdir()
    bad = damage((tmp_path / "fresh" / "last.pt").read_bytes())
    (folder / "last.pt").write_bytes(bad)
    with caplog.at_level("WARNING", logger="maskops.train"):
        result = train_model(images, labels, images[:8], labels[:8], cfg, folder)
    assert result.resumed_from_epoch is None and [h["epoch"] for h in result.history] == [0]
    assert all(torch.equal(x, y) for x, y in zip(fresh.model.state_dict().values(), result.model.state_dict().values(), strict=True))
    aside = list(folder.glob("last.pt.corrupt-*"))
    assert [str(p) for p in aside] == [result.discarded_checkpoint] and aside[0].read_bytes() == bad  # kept, never deleted
    assert str(folder / "last.pt") in caplog.text and "moved the checkpoint" in caplog.text
    # the new run wrote a good checkpoint: the next call resumes from it (nothing left to train)
    again = train_model(images, labels, images[:8], labels[:8], cfg, folder)
    assert again.resumed_from_epoch == 1 and again.discarded_checkpoint is None


def test_early_stopping_and_sampler_settings(monkeypatch: pytest.MonkeyPatch):
    import maskops.train

    images, labels = _data()
    monkeypatch.setattr(maskops.train, "evaluate", lambda y, p: {"macro_f1": 0.5, "accuracy": 0.5})  # validation never improves
    result = train_model(images, labels, images[:16], labels[:16], replace(TINY, epochs=6, patience=2))
    assert result.stopped_early and [h["epoch"] for h in result.history] == [0, 1, 2] and result.best_epoch == 0
    with pytest.raises(ValueError, match="sampler"):
        replace(TINY, sampler="magic")


def test_presets_and_overrides():
    assert PRESETS["seed-best"].backbone == "tiny_vit_21m_224" and PRESETS["seed-best"].freeze_stages == 2
    cfg = config_from("demo", epochs=1, task_weights=[0.05, 0.05, 0.9], backbone=None)
    assert cfg.epochs == 1 and cfg.task_weights == (0.05, 0.05, 0.9) and cfg.backbone == PRESETS["demo"].backbone
    with pytest.raises(ValueError, match="unknown preset"):
        config_from("best-ever")


def test_local_pretrained_file_loads_its_weights(tmp_path: Path):
    import timm

    source = timm.create_model("resnet10t", pretrained=False, num_classes=0)
    torch.nn.init.constant_(source.conv1[0].weight, 0.125)
    weights = tmp_path / "resnet10t.pth"
    torch.save(source.state_dict(), weights)
    net = MaskNet("resnet10t", "hard", pretrained_file=str(weights))
    assert torch.equal(net.backbones[0].conv1[0].weight, source.conv1[0].weight)
    random_init = MaskNet("resnet10t", "hard")
    assert not torch.equal(random_init.backbones[0].conv1[0].weight, source.conv1[0].weight)


def test_augmentation_is_configurable_and_keeps_shapes():
    from maskops.data import Augment

    batch = torch.randint(0, 255, (4, 3, 32, 32), dtype=torch.uint8)
    g = torch.Generator().manual_seed(0)
    out = Augment(flip=True, scale=0.2, jitter=0.3)(batch, g)
    assert out.shape == (4, 3, 32, 32) and out.dtype == torch.float32 and out.min() >= 0 and out.max() <= 255
    assert torch.equal(Augment(flip=False, scale=0.0, jitter=0.0)(batch, g), batch.float())  # all off: unchanged
    grey = Augment(flip=False, scale=0.0, jitter=0.0, grey=1.0)(batch, g)
    assert torch.equal(grey[:, 0], grey[:, 1]) and torch.equal(grey[:, 1], grey[:, 2])  # every channel the same luma
    assert grey[:, 0].sub(0.299 * batch[:, 0] + 0.587 * batch[:, 1] + 0.114 * batch[:, 2]).abs().max() < 1e-3
    blurred = Augment(flip=False, scale=0.0, jitter=0.0, blur=1.0)(batch, g)
    assert blurred.std() < batch.float().std() * 0.8  # a box blur smooths random noise
    coarse = Augment(flip=False, scale=0.0, jitter=0.0, lowres=1.0)(batch, g)
    assert coarse.shape == batch.shape and coarse.std() < batch.float().std() * 0.5  # 8 x 8 pixels enlarged back to 32 x 32
    # off (share 0) draws no random numbers: a seeded stream is what it was before the options existed
    a, b = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(Augment()(batch, a), Augment(grey=0.0, blur=0.0, lowres=0.0)(batch, b)) and torch.equal(a.get_state(), b.get_state())


def _separable(n: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """Images whose colour says their class (learnable in a few steps), 32 px."""
    y = np.arange(n) % 18
    palette = np.random.default_rng(0).integers(0, 256, size=(18, 3, 1, 1))
    x = palette[y] + np.random.default_rng(seed).normal(0, 25, size=(n, 3, 32, 32))
    return torch.from_numpy(np.clip(x, 0, 255).astype(np.uint8)), y


@pytest.mark.slow
def test_two_processes_train_the_same_model_as_one():
    """Data-parallel training under torchrun (gloo, 2 CPU processes): every process draws the same global batch and
    trains on its half, gradients are averaged. With a LayerNorm backbone that is the same computation as one process:
    the validation metrics agree within 0.01 and the probabilities within 1e-3. (BatchNorm backbones see per-process
    batch statistics on CPU, where SyncBatchNorm does not exist; on CUDA the loop converts them to SyncBatchNorm.)"""
    train_images, train_labels = _separable(144, 1)
    val_images, val_labels = _separable(72, 2)
    cfg = config_from("scratch", backbone="convnext_atto", image_size=32, epochs=2, batch_size=32, device="cpu")
    one = train_model(train_images, train_labels, val_images, val_labels, cfg)
    epochs = []
    two = train_model(train_images, train_labels, val_images, val_labels, replace(cfg, processes=2), on_epoch=lambda e, m: epochs.append(e))
    assert epochs == [0, 1]  # the per-epoch callback is replayed after the processes finish
    for key in ("macro_f1", "accuracy", "mask_f1", "gender_f1", "age_f1"):
        assert two.val_metrics[key] == pytest.approx(one.val_metrics[key], abs=0.01), key
    assert np.abs(two.val_probabilities - one.val_probabilities).max() < 1e-3
    assert [h["train_loss"] for h in two.history] == pytest.approx([h["train_loss"] for h in one.history], abs=1e-3)
    with pytest.raises(ValueError, match="processes must be"):
        replace(cfg, processes=64)  # more processes than images per batch


def test_the_batch_path_creates_every_tensor_on_the_batch_device():
    """The loop's data side — sampling, gathering, augmenting, normalizing — with the default device set to `meta`:
    any tensor made without naming the batch's device lands on meta and the step fails, on CPU, exactly as a CPU
    tensor met a CUDA batch on the GPU (the crash of augmentation's flip mask)."""
    from maskops.data import Augment, EpochSampler, normalize

    images = torch.randint(0, 255, (10, 3, 16, 16), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 1, 2, 2, 2, 3, 3, 3, 3])
    with torch.device("meta"):
        for kind in ("weighted", "shuffle"):
            index = EpochSampler(labels, kind, seed=0).epoch()[:4]
            x = normalize(Augment(flip=True, scale=0.2, jitter=0.3, grey=0.5, blur=0.5)(images[index], torch.Generator().manual_seed(1)))
            assert index.device.type == x.device.type == "cpu" and x.shape == (4, 3, 16, 16) and torch.isfinite(x).all()
    with pytest.raises(ValueError, match="generator is on cpu but the batch on meta"):
        Augment()(torch.zeros(2, 3, 8, 8, dtype=torch.uint8, device="meta"), torch.Generator())
