"""Robust accuracy: per-group accuracy, per-severity accuracy and the mean corrupted accuracy."""

import numpy as np
import pandas as pd
import pytest

from finetune_invariance.study import tables
from finetune_invariance.study.cifar_c import CorruptedSet
from finetune_invariance.study.robust_accuracy import mean_corrupted_accuracy, robust_accuracy, severity_accuracy
from finetune_invariance.study.vocabulary import with_context

from .conftest import PAPER_RUN, robust_accuracy_table


def bright_is_one(images: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean((images.reshape(len(images), -1).mean(axis=1) > 127) == labels))


def test_one_row_per_group_with_its_own_accuracy_and_size():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(20, 4, 4, 3), dtype=np.uint8)
    labels = rng.integers(0, 2, size=20)
    sample = [CorruptedSet("clean", 0, images, labels)]
    sample += [CorruptedSet("contrast", s, images[: 5 * s] // s, labels[: 5 * s]) for s in (1, 2, 3)]
    result = robust_accuracy(bright_is_one, sample)
    assert result.corruption.tolist() == ["clean", "contrast", "contrast", "contrast"]
    assert result.severity.tolist() == [0, 1, 2, 3] and result.n_images.tolist() == [20, 5, 10, 15]
    for row, divisor, n in zip(result.itertuples(), (1, 1, 2, 3), (20, 5, 10, 15)):
        naive = sum(int((images[i] // divisor).mean() > 127) == labels[i] for i in range(n)) / n
        assert row.accuracy == pytest.approx(naive)
    table = tables.conform(with_context(result, PAPER_RUN, epoch=4), tables.ROBUST_ACCURACY)
    assert (table.epoch == 4).all()


def test_a_models_image_accuracy_scales_the_images_and_counts_its_right_answers():
    """evaluation.image_accuracy on a model that answers 1 where an image's mean scaled
    value exceeds 0.5 agrees with the same rule counted by hand on the uint8 images."""
    import torch

    from finetune_invariance.study.evaluation import image_accuracy

    class Brightness(torch.nn.Module):
        def forward(self, x):
            brightness = x.mean(dim=(1, 2, 3))
            return torch.stack([0.5 - brightness, brightness - 0.5], dim=1)

    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(30, 4, 4, 3), dtype=np.uint8)
    labels = rng.integers(0, 2, size=30)
    naive = np.mean([int(image.mean() / 255 > 0.5) == label for image, label in zip(images, labels)])
    assert 0 < naive < 1  # the rule is right on some images and wrong on others
    accuracy = image_accuracy(Brightness(), "classification", 4, "cpu")
    assert accuracy(images, labels) == pytest.approx(naive)
    assert robust_accuracy(accuracy, [CorruptedSet("clean", 0, images, labels)]).accuracy.tolist() == [
        pytest.approx(naive)
    ]


def test_accuracy_outside_zero_one_is_rejected():
    images, labels = np.zeros((2, 2, 2, 3), np.uint8), np.zeros(2)
    with pytest.raises(ValueError, match=r"accuracy_fn returned 2.0 for 'clean'"):
        robust_accuracy(lambda x, y: 2.0, [CorruptedSet("clean", 0, images, labels)])


def test_severity_accuracy_weights_the_corruptions_by_their_number_of_inputs():
    table = robust_accuracy_table({1: [0.5, 0.4, 0.3, 0.2, 0.1]})
    # fog has 30 inputs at 0.8 at severity 1, contrast 10 at 0.4: 28 of 40 correct.
    table.loc[(table.corruption == "fog") & (table.severity == 1), ["accuracy", "n_images"]] = [0.8, 30]
    table.loc[(table.corruption == "contrast") & (table.severity == 1), ["accuracy", "n_images"]] = [0.4, 10]
    per_severity = severity_accuracy(table).set_index("severity")["accuracy"]
    assert per_severity[1] == pytest.approx(28 / 40)
    assert per_severity[2] == pytest.approx(0.4) and per_severity[0] == pytest.approx(0.9)  # clean


def test_an_undefined_group_accuracy_is_refused_not_counted_as_wrong_answers():
    table = robust_accuracy_table({1: [0.5, 0.4, 0.3, 0.2, 0.1]})
    # fog and contrast each have 50 inputs at 0.8 at severity 3: 80 of 100 correct. With fog's
    # accuracy undefined, pooling its 50 inputs as wrong answers would give 40 / 100 = 0.4.
    table.loc[table.severity == 3, "accuracy"] = 0.8
    assert severity_accuracy(table).set_index("severity")["accuracy"][3] == pytest.approx(80 / 100)
    table.loc[(table.corruption == "fog") & (table.severity == 3), "accuracy"] = np.nan
    cell = r"\[\[1, 'fog', 3\]\]"
    with pytest.raises(ValueError, match=f"undefined \\(NaN\\) accuracies at \\(epoch, corruption, severity\\) {cell}"):
        severity_accuracy(table)
    with pytest.raises(ValueError, match=cell):
        mean_corrupted_accuracy(table)


def test_mean_corrupted_accuracy_is_the_mean_over_severities_without_clean():
    table = robust_accuracy_table({1: [0.5, 0.4, 0.3, 0.2, 0.1], 2: [0.9, 0.9, 0.8, 0.8, 0.6]}, clean=0.99)
    mean = mean_corrupted_accuracy(table)
    assert mean.loc[1] == pytest.approx(0.3) and mean.loc[2] == pytest.approx(0.8)


def test_bad_tables_are_named():
    table = robust_accuracy_table({1: [0.5] * 5})
    with pytest.raises(ValueError, match="several rows for"):
        mean_corrupted_accuracy(pd.concat([table, table.iloc[[3]]]))
    with pytest.raises(ValueError, match="lacks some severities at epochs \\[1\\]"):
        mean_corrupted_accuracy(table[table.severity != 5])
    with pytest.raises(ValueError, match="no corrupted rows for epochs \\[1\\]"):
        mean_corrupted_accuracy(table[table.corruption == "clean"])
