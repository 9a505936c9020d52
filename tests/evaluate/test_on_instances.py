"""Scoring an IC-GAN's samples on another dataset's instances: the distances to that dataset and how often
a sample keeps its instance's label."""

import numpy as np
import pytest

from ganops.evaluate import on_instances


class PixelJudge:
    """An evaluator of the shape ganops's has: features are the pixels; the class is the image's mean level
    band (0..3); it knows classes 0..2 only."""
    classes = [0, 1, 2]
    head = object()

    def features(self, images, batch_size=500):
        return np.asarray(images, np.float32).reshape(len(images), -1) / 255.0

    def predict(self, images, batch_size=500):
        return np.asarray(images, np.float32).reshape(len(images), -1).mean(1).astype(int) // 64


def _images(levels, rng):
    base = np.repeat(np.asarray(levels, np.int64) * 64 + 20, 16).reshape(len(levels), 1, 4, 4)
    return np.clip(base + rng.integers(-8, 9, base.shape), 0, 255).astype(np.uint8)


def test_samples_like_the_other_dataset_score_close_and_keep_their_labels():
    rng = np.random.default_rng(0)
    labels = np.arange(300) % 4                                # class 3 is unknown to the judge
    reference = _images(labels, rng)
    alike = _images(np.repeat(labels, 2), rng)                 # two samples per instance, each of its class
    shifted = _images(np.repeat((labels + 1) % 4, 2), rng)     # the dataset's look, each of the next class
    far = np.full_like(alike, 250)                              # nothing like the dataset
    judge = PixelJudge()

    def score(samples):
        return on_instances.score(judge, reference, samples, instance_labels=labels, per_instance=2, kid_subsets=10,
                                  kid_subset_size=100)

    good, wrong, away = score(alike), score(shifted), score(far)
    assert good["label_agreement"] == 1.0 and wrong["label_agreement"] == 0.0
    assert good["label_agreement_n"] == 2 * 225                 # the samples of instances of classes 0..2
    assert good["precision"] > 0.8 and good["recall"] > 0.8 and away["precision"] < 0.05
    assert good["fid"] < 0.01 * away["fid"] and good["kid_mean"] < 0.01 * away["kid_mean"]
    # the distances see the set, not the pairing: the agreement is what tells a swapped class
    assert wrong["fid"] < 0.01 * away["fid"]


def test_without_labels_or_a_classifier_there_is_no_agreement():
    rng = np.random.default_rng(1)
    reference = _images(np.arange(50) % 3, rng)
    judge = PixelJudge()
    assert "label_agreement" not in on_instances.score(judge, reference, reference, kid_subsets=5,
                                                       kid_subset_size=20)
    judge.head = None                                           # a SimCLR evaluator: features, no classes
    got = on_instances.score(judge, reference, reference, instance_labels=np.zeros(50, int), kid_subsets=5,
                             kid_subset_size=20)
    assert "label_agreement" not in got and got["fid"] == pytest.approx(0, abs=1e-3)
