"""The encoders of the embeddings stage: features a k-NN can trust, resumable training, clear errors
for missing labels or pretrained weights, and a saved encoder that embeds new images as the stage did."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from ganops.core.params import Params
from ganops.embed import EncoderError, embed, embed_images, extract, load_encoder
from ganops.embed.augment import Policy, augment

CPU = torch.device("cpu")


def digits(n: int = 256, side: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Real handwritten digits (scikit-learn's bundled 8×8 set), scaled to uint8 and resized."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images[:n].astype(np.float32) / 16.0)[:, None]
    x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
    return (x * 255).round().to(torch.uint8).numpy(), d.target[:n].astype(np.int64)


def params(**embed_values: object) -> Params:
    values = {"epochs": 2, "min_steps": 0, "batch_size": 64, "dim": 32, **embed_values}
    return Params(seed=0, device="cpu", embed=values)


def assert_unit_rows(f: np.ndarray, n: int, d: int) -> None:
    assert f.shape == (n, d) and f.dtype == np.float32 and f.flags.c_contiguous
    assert np.isfinite(f).all()
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, atol=1e-4)


@pytest.fixture(scope="module")
def small() -> tuple[np.ndarray, np.ndarray]:
    return digits(192)


# ------------------------------------------------------------------ pixels

def test_pixels_are_centred_unit_rows_deterministic_and_read_only_input_is_fine(small, tmp_path):
    images, labels = small
    np.save(tmp_path / "images.npy", images)
    mm = np.load(tmp_path / "images.npy", mmap_mode="r")     # what the stage passes: a read-only memory map
    a = embed(mm, labels, params(encoder="pixels"), CPU)
    b = embed(images, labels, params(encoder="pixels"), CPU)
    assert_unit_rows(a.features, len(images), 32 * 32)
    np.testing.assert_array_equal(a.features, b.features)
    assert a.state_dict is None
    # Centred: without the mean image, every dark-background digit would look alike (cosine ≈ 1).
    assert float((a.features @ a.features.T).mean()) < 0.2
    np.testing.assert_array_equal(np.load(tmp_path / "images.npy"), images)


def test_images_must_be_uint8_nchw():
    with pytest.raises(EncoderError, match="uint8"):
        embed(np.zeros((4, 1, 8, 8), np.float32), None, params(encoder="pixels"), CPU)
    with pytest.raises(EncoderError, match="channels"):
        embed(np.zeros((4, 2, 8, 8), np.uint8), None, params(encoder="pixels"), CPU)


# ------------------------------------------------------------------ augmentations

@pytest.mark.parametrize("channels", [1, 3])
def test_augmented_views_keep_shape_and_range_and_differ(channels):
    x = torch.from_numpy(digits(16)[0]).float().div(255).expand(-1, channels, -1, -1).contiguous()
    v1 = augment(x, torch.Generator().manual_seed(0))
    v2 = augment(x, torch.Generator().manual_seed(1))
    again = augment(x, torch.Generator().manual_seed(0))
    assert v1.shape == x.shape and v1.dtype == torch.float32
    assert float(v1.min()) >= 0.0 and float(v1.max()) <= 1.0
    assert torch.equal(v1, again)                          # same generator state, same views
    assert (v1 - v2).abs().mean(dim=(1, 2, 3)).min() > 1e-3  # every image's two views differ
    assert (v1 - x).abs().mean(dim=(1, 2, 3)).min() > 1e-3


def test_stroke_views_draw_the_same_digit_with_a_thinner_or_thicker_pen():
    x = torch.from_numpy(digits(64)[0]).float().div(255)
    still = Policy(crop_area=(1.0, 1.0), aspect=(1.0, 1.0), rotate_deg=0, shear=0, shift=0, elastic=0, brightness=0,
                   contrast=0, blur_p=0, erase_p=0)
    assert torch.allclose(augment(x, torch.Generator().manual_seed(0), still), x, atol=1e-5)  # the frame alone
    v = augment(x, torch.Generator().manual_seed(0), replace(still, stroke_p=1.0))
    ink, ink_v = (x > 0.5).sum(dim=(1, 2, 3)), (v > 0.5).sum(dim=(1, 2, 3))
    assert float(v.min()) >= 0 and float(v.max()) <= 1
    assert (ink_v < ink).any() and (ink_v > ink).any()     # thinner pens and thicker ones
    # the pen changes, not the drawing: every view keeps most of its ink where the digit was
    near = F.max_pool2d(x, 3, 1, 1) > 0.25
    assert ((v > 0.5) & ~near).sum(dim=(1, 2, 3)).max() <= 0.05 * 32 * 32


# ------------------------------------------------------------------ simclr

def test_simclr_gives_unit_features_deterministic_for_a_seed(small):
    images, labels = small
    logged: list[tuple[str, float, int]] = []
    a = embed(images, labels, params(), CPU, log=lambda *m: logged.append(m))
    b = embed(images, labels, params(), CPU)
    assert_unit_rows(a.features, len(images), 32)
    np.testing.assert_array_equal(a.features, b.features)
    assert [(name, step) for name, _, step in logged] == [("simclr_loss", 1), ("simclr_loss", 2)]
    assert all(np.isfinite(v) for _, v, _ in logged)
    assert a.metrics["epochs"] == 2 and len(a.metrics["history"]) == 2 and a.metrics["train_seconds"] > 0
    other_seed = embed(images, labels, Params(seed=1, embed={"epochs": 2, "min_steps": 0, "batch_size": 64,
                                                             "dim": 32}), CPU)
    assert not np.allclose(a.features, other_seed.features)


def test_a_small_dataset_trains_whole_epochs_up_to_min_steps_updates(small):
    images, labels = small                                  # 192 images at batch 64: 3 updates an epoch
    logged: list[tuple[str, float, int]] = []
    raised = embed(images, labels, params(min_steps=10), CPU, log=lambda *m: logged.append(m))
    assert raised.metrics["epochs"] == 4 and raised.metrics["steps"] == 12       # ⌈10 / 3⌉ epochs, not 2
    assert [step for _, _, step in logged] == [1, 2, 3, 4]
    kept = embed(images, labels, params(epochs=5, min_steps=10), CPU)            # epochs already make 15 updates
    assert kept.metrics["epochs"] == 5 and kept.metrics["steps"] == 15


class Interrupt(Exception):
    pass


def test_interrupted_training_resumes_to_the_same_features(small, tmp_path):
    images, labels = small
    p = params()
    ckpt = tmp_path / "ckpt" / "train.pt"
    uninterrupted = embed(images, labels, p, CPU)

    def stop_after_first_epoch(name: str, value: float, step: int) -> None:
        if step == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        embed(images, labels, p, CPU, checkpoint=ckpt, log=stop_after_first_epoch)
    assert ckpt.exists()
    assert list(ckpt.parent.iterdir()) == [ckpt]           # atomic write: no temporary left behind
    resumed = embed(images, labels, p, CPU, checkpoint=ckpt)
    assert resumed.metrics["resumed_from_epoch"] == 1
    np.testing.assert_array_equal(resumed.features, uninterrupted.features)     # the one trainer: exact resume
    # a finished training's checkpoint is at its last step: asked again, nothing is retrained
    again = embed(images, labels, p, CPU, checkpoint=ckpt)
    assert again.metrics["resumed_from_epoch"] == p.embed.epochs
    np.testing.assert_array_equal(again.features, uninterrupted.features)


def test_a_checkpoint_made_with_other_params_or_data_is_refused_naming_what_differs(small, tmp_path):
    """One resume policy for every network the pipeline trains: the GAN trainer's."""
    from ganops.train import TrainError

    images, labels = small
    ckpt = tmp_path / "train.pt"

    def stop(name: str, value: float, step: int) -> None:
        raise Interrupt

    with pytest.raises(Interrupt):
        embed(images, labels, params(lr=1e-3), CPU, checkpoint=ckpt, log=stop)
    with pytest.raises(TrainError, match=r"(?s)train\.pt was made with other parameters or data.*embed\.lr: "
                                         r"checkpoint 0\.001, now 0\.002.*delete the checkpoint"):
        embed(images, labels, params(), CPU, checkpoint=ckpt)
    other = images.copy()
    other[:, :, :4] = 255 - other[:, :, :4]
    with pytest.raises(TrainError, match="data pixel_sample"):
        embed(other, labels, params(lr=1e-3), CPU, checkpoint=ckpt)
    assert embed(images, labels, params(lr=1e-3), CPU, checkpoint=ckpt).metrics["resumed_from_epoch"] == 1


def test_saved_encoder_embeds_images_exactly_as_the_stage_did(small, tmp_path):
    images, labels = small
    res = embed(images, labels, params(epochs=1), CPU)
    torch.save(res.state_dict, tmp_path / "encoder.pt")      # as the stage writes encoder.pt
    enc = load_encoder(tmp_path / "encoder.pt", CPU)
    np.testing.assert_allclose(embed_images(enc, images, CPU), res.features, atol=1e-5)
    np.testing.assert_allclose(embed_images(tmp_path / "encoder.pt", images[3]), res.features[3:4], atol=1e-5)
    # A user's RGB photo of another size is converted to the encoder's 1-channel 32×32 input.
    rgb = np.repeat(images[:2], 3, axis=1)[:, :, ::2, ::2].copy()
    assert_unit_rows(embed_images(enc, rgb, CPU), 2, 32)
    with pytest.raises(EncoderError, match="does not exist"):
        load_encoder(tmp_path / "missing.pt")


# ------------------------------------------------------------------ classifier

def test_classifier_needs_labels_of_two_classes(small):
    images, _ = small
    with pytest.raises(EncoderError, match="embed.encoder=classifier.*label"):
        embed(images, np.full(len(images), -1), params(encoder="classifier"), CPU)
    with pytest.raises(EncoderError, match="at least 2 classes"):
        embed(images, np.where(np.arange(len(images)) % 2 == 0, 3, -1), params(encoder="classifier"), CPU)


def test_classifier_trains_on_labelled_images_and_embeds_all(small):
    images, labels = small
    partial = labels.copy()
    partial[::3] = -1                                       # unknown labels are embedded, not trained on
    res = embed(images, partial, params(encoder="classifier", epochs=1), CPU)
    assert_unit_rows(res.features, len(images), 32)
    assert res.metrics["classes"] == 10
    assert res.state_dict["encoder"] == "classifier"


# ------------------------------------------------------------------ pretrained (never downloaded)

@pytest.mark.parametrize("encoder, fname", [("resnet50", "resnet50-11ad3fa6.pth"),
                                            ("swav", "swav_800ep_pretrain.pth.tar")])
def test_missing_pretrained_weights_name_the_file_url_and_path(encoder, fname, tmp_path, monkeypatch, small):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(EncoderError) as err:
        embed(small[0][:4], None, params(encoder=encoder, image_size=32), CPU)
    msg = str(err.value)
    assert str(tmp_path / "hub" / "checkpoints" / fname) in msg
    assert "https://" in msg and f"embed.encoder={encoder}" in msg
    assert not (tmp_path / "hub" / "checkpoints" / fname).exists()     # nothing was downloaded


def _random_resnet50_state() -> dict[str, torch.Tensor]:
    from torchvision.models import resnet50

    torch.manual_seed(0)
    return resnet50(weights=None).state_dict()


@pytest.mark.parametrize("encoder, fname, layout", [
    ("resnet50", "resnet50-11ad3fa6.pth", "torchvision"),
    ("resnet50", "resnet50-0676ba61.pth", "torchvision"),        # V1 weights are accepted too
    ("swav", "swav_800ep_pretrain.pth.tar", "module"),            # the real SwAV file: module.-prefixed
    ("swav", "swav_800ep_pretrain.pth.tar", "state_dict"),
])
def test_cached_pretrained_weights_give_2048_d_features(encoder, fname, layout, tmp_path, monkeypatch, small):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    state = _random_resnet50_state()
    if layout != "torchvision":     # SwAV's checkpoint: DDP prefixes, its own heads, no fc
        state = {f"module.{k}": v for k, v in state.items() if not k.startswith("fc.")}
        state["module.projection_head.0.weight"] = torch.zeros(16, 2048)
        state["module.prototypes.weight"] = torch.zeros(8, 16)
        if layout == "state_dict":
            state = {"state_dict": state, "epoch": 800}
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(state, folder / fname)

    images = small[0][:4]
    res = embed(images, None, params(encoder=encoder, image_size=32, extract_batch_size=2), CPU)
    assert_unit_rows(res.features, 4, 2048)
    assert res.state_dict["config"]["weights_file"] == fname
    enc = load_encoder(res.state_dict, CPU)
    np.testing.assert_allclose(embed_images(enc, images), res.features, atol=1e-4)


def test_extract_batches_give_the_same_features_as_one_batch(small):
    images, labels = small
    res = embed(images, labels, params(encoder="classifier", epochs=1), CPU)
    model = load_encoder(res.state_dict)
    np.testing.assert_allclose(extract(model, images, CPU, batch_size=7), res.features, atol=1e-5)


def test_pieces_of_another_encoder_are_not_kept(small, tmp_path):
    """A rerun whose encoder differs (retrained, other data) must not keep the pieces the last one left."""
    from ganops.embed.base import extract_pieces

    images, labels = small
    first = load_encoder(embed(images, labels, params(encoder="classifier", epochs=1), CPU).state_dict)
    other = load_encoder(embed(images, labels, params(encoder="classifier", epochs=1, lr=0.01), CPU).state_dict)
    pieces = tmp_path / "pieces"
    a = np.array(extract_pieces(first, images, CPU, 16, pieces, 50))
    np.testing.assert_allclose(a, extract(first, images, CPU, 16), atol=1e-6)    # read in order: the same rows
    b = np.array(extract_pieces(other, images, CPU, 16, pieces, 50))
    assert not np.allclose(a, b)
    np.testing.assert_allclose(b, extract(other, images, CPU, 16), atol=1e-6)
    written = {f: f.stat().st_mtime_ns for f in pieces.glob("*.npy")}
    kept = extract_pieces(other, images, CPU, 16, pieces, 50)    # same encoder: kept, not extracted again
    assert np.asarray(kept).tobytes() == b.tobytes() and len(written) == len(kept.files)
    assert {f: f.stat().st_mtime_ns for f in pieces.glob("*.npy")} == written
