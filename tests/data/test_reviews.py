import numpy as np
import pytest

from lightning_aca import RottenTomatoesDataModule
from lightning_aca.data.reviews import load_reviews


def test_reviews_counts_and_classes():
    two = load_reviews()
    assert len(two) == 12808 and two.targets.bincount().tolist() == [5405, 7403]  # rotten 0, fresh 1
    three = load_reviews(["fresh", "rotten", "plot"])
    assert three.targets.bincount().tolist() == [7403, 5405, 1083]  # 14 empty plot summaries left out
    assert all(t.strip() for t in three.texts)
    with pytest.raises(ValueError, match="categories of"):
        load_reviews(["fresh", "spoiler"])


def test_reviews_split_is_stratified_and_fixed_by_its_seed(tiny_text_model):
    def split(seed):
        dm = RottenTomatoesDataModule(tokenizer=str(tiny_text_model), split_seed=seed)
        dm.setup("fit")
        return dm

    dm = split(0)
    train, test = dm.train_dataset.targets.numpy(), dm.test_dataset.targets.numpy()
    assert dm.num_classes == 2 and len(train) + len(test) == 12808 and len(test) == 2562
    assert abs(np.mean(train) - np.mean(test)) < 1e-3  # the same fresh share in both splits
    assert split(0).test_dataset.texts == dm.test_dataset.texts != split(1).test_dataset.texts
    assert dm.val_dataset is dm.test_dataset


def test_reviews_hold_out_a_stratified_validation_split_apart_from_the_test_set(tiny_text_model):
    plain = RottenTomatoesDataModule(tokenizer=str(tiny_text_model))
    dm = RottenTomatoesDataModule(tokenizer=str(tiny_text_model), val_fraction=0.1)
    plain.setup("fit")
    dm.setup("fit")
    assert dm.test_dataset.texts == plain.test_dataset.texts  # the same test set with or without validation
    assert len(dm.val_dataset) == 1025 and len(dm.train_dataset) == 10246 - 1025
    assert sorted(dm.train_dataset.texts + dm.val_dataset.texts) == sorted(plain.train_dataset.texts)
    assert abs(dm.val_dataset.targets.float().mean() - plain.test_dataset.targets.float().mean()) < 2e-3
    with pytest.raises(ValueError, match="val_fraction"):
        RottenTomatoesDataModule(tokenizer=str(tiny_text_model), val_fraction=1.0)
