"""Text data: (text, label) items, tokenized in the loader's collate function.

Hardt et al. 2023, §6 plant a signal in raw text (a token inserted every k-th word) and train a
BERT-like classifier on it. The collective acts on the text itself, before tokenization, so items
stay ``(text, label)`` through :class:`~lightning_aca.collective.dataset.CollectiveDataset`, and
:class:`TextCollate` tokenizes every text field of a batch with the model's tokenizer (dynamic
padding to the longest text of the batch, truncation to ``max_length`` tokens).

Sources: :class:`TextCSVDataModule` (a user's CSV, TSV or JSON Lines file) and
:class:`~lightning_aca.data.reviews.RottenTomatoesDataModule` (``data=reviews``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset
from torch.utils.data._utils.collate import default_collate

from lightning_aca.assets import default_text_model
from lightning_aca.data.in_memory import InMemoryDataModule
from lightning_aca.data.reader import read_table
from lightning_aca.data.split import stratified_split
from lightning_aca.validation import integer, non_negative_int, positive_int, real


class TextDataset(Dataset):
    """``(text, label)`` items held in memory; ``targets`` holds the labels as a tensor.

    Every text must be a string with at least one word and every label a class index ≥ 0; the
    error names the first bad item.

    Example:
        >>> ds = TextDataset(["a fine film", "dull"], [1, 0])
        >>> ds[0], ds.targets.tolist()
        (('a fine film', 1), [1, 0])
    """

    def __init__(self, texts: Sequence[str], labels: Sequence[int]) -> None:
        if len(texts) != len(labels):
            raise ValueError(f"TextDataset got {len(texts)} texts but {len(labels)} labels; give one label per text.")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(
                    f"TextDataset texts[{i}] is {type(text).__name__} ({text!r:.60}), not a string; give raw text."
                )
            if not text.strip():
                raise ValueError(f"TextDataset texts[{i}] is empty ({text!r}); remove empty documents.")
        self.texts = list(texts)
        self.targets = torch.as_tensor(
            [integer(f"TextDataset labels[{i}]", y, low=0, kind="a class index >= 0") for i, y in enumerate(labels)],
            dtype=torch.long,
        )

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, index: int) -> tuple[str, int]:
        return self.texts[index], int(self.targets[index])

    def subset(self, indices: Sequence[int]) -> TextDataset:
        """The items at ``indices``, as a new ``TextDataset``."""
        return TextDataset([self.texts[i] for i in indices], self.targets[list(indices)].tolist())


def load_tokenizer(tokenizer: Any) -> Any:
    """A Hugging Face tokenizer: ``tokenizer`` itself, or loaded from a local directory or Hub name.

    ``None`` is the shipped MiniLM-L6's tokenizer, as ``TextClassifier(model_name_or_path=None)``
    is the shipped MiniLM-L6.
    """
    if tokenizer is not None and not isinstance(tokenizer, (str, Path)):
        return tokenizer
    from transformers import AutoTokenizer

    path = default_text_model() if tokenizer is None else tokenizer
    try:
        return AutoTokenizer.from_pretrained(str(path))
    except OSError as err:
        raise OSError(
            f"could not load a tokenizer from tokenizer={str(path)!r} ({err}); give the model's directory "
            "(with aca-run, data.datamodule.tokenizer follows model.model_name_or_path)."
        ) from None


class TextCollate:
    """Collate ``(text, label, ...)`` items: every text field tokenized, every other field stacked.

    A field is text when the batch's first item holds a string there; it becomes a dict of
    ``input_ids``, ``attention_mask`` (and ``token_type_ids`` where the tokenizer makes them), padded
    to the batch's longest text and truncated to ``max_length`` tokens (the text's first tokens
    are kept). Tuple items give a list, dict items a dict, as ``default_collate`` lays them out;
    a signal evaluation batch ``(g(x), y*, x, y)`` gets both texts tokenized. Picklable, for
    loader workers.

    Args:
        tokenizer: a Hugging Face tokenizer, or its local path or name (loaded once); ``None``
            for the shipped MiniLM-L6's.
        max_length: the most tokens a text keeps, special tokens included.
    """

    def __init__(self, tokenizer: Any, max_length: int = 128) -> None:
        self.tokenizer = load_tokenizer(tokenizer)
        self.max_length = positive_int("max_length", max_length)

    def __call__(self, items: Sequence[Any]) -> Any:
        first = items[0]
        if isinstance(first, Mapping):
            return {key: self._field([item[key] for item in items], repr(key)) for key in first}
        if isinstance(first, Sequence) and not isinstance(first, str):
            return [self._field([item[i] for item in items], str(i)) for i in range(len(first))]
        raise TypeError(f"TextCollate collates (text, label, ...) tuples or dicts, got {type(first).__name__}.")

    def _field(self, values: list[Any], where: str) -> Any:
        if not isinstance(values[0], str):
            return default_collate(values)
        bad = next((v for v in values if not isinstance(v, str)), None)
        if bad is not None:
            raise TypeError(
                f"TextCollate: field {where} holds text in the batch's first item but {type(bad).__name__} "
                f"({bad!r:.60}) in another; every item must hold a string there."
            )
        return self.encode(values)

    def encode(self, texts: list[str]) -> dict[str, Tensor]:
        """The tokenized batch: padded to its longest text, truncated to ``max_length`` tokens."""
        encoded = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        return dict(encoded)

    def count_truncated(self, texts: Sequence[str]) -> int:
        """How many of ``texts`` are longer than ``max_length`` tokens (special tokens included)."""
        ids = self.tokenizer(list(texts), truncation=False, return_attention_mask=False)["input_ids"]
        return sum(len(row) > self.max_length for row in ids)

    def check_signal(self, signal: Any) -> None:
        """Warn when a token-inserting signal's token is split into several tokenizer pieces.

        The collective's token should reach the model as one rare token, as in Hardt et al.'s §6;
        a token split into common pieces (``"zxq"`` into ``z ##x ##q``) is a weaker, diluted signal.
        """
        token = getattr(signal, "token", None)
        if not isinstance(token, str):
            return
        pieces = self.tokenizer.tokenize(token)
        if len(pieces) > 1:
            warnings.warn(
                f"the signal's token {token!r} is split by the tokenizer into {len(pieces)} pieces {pieces}; "
                "the model sees these pieces, each of which may occur in clean text. Choose a token the "
                "tokenizer keeps whole (a rare character such as '~', or a word in its vocabulary).",
                UserWarning,
                stacklevel=2,
            )

    def __repr__(self) -> str:
        return f"TextCollate(tokenizer={type(self.tokenizer).__name__}, max_length={self.max_length})"


class TextDataModule(InMemoryDataModule):
    """Text classification data served as ``(text, label)`` items, tokenized in each loader's collate.

    Subclasses give :meth:`build` (the ``TextDataset`` splits) and ``num_classes``. At setup, the
    module warns once with the number of training texts longer than ``max_length`` tokens (they
    are truncated to their first ``max_length`` tokens).

    Args:
        tokenizer: the model's tokenizer, or its local path or name.
        max_length: the most tokens a text keeps, special tokens included.
        batch_size, num_workers: loader settings.
    """

    num_classes: int | None = None

    def __init__(self, tokenizer: Any, max_length: int = 128, batch_size: int = 32, num_workers: int = 0) -> None:
        super().__init__(batch_size, num_workers)
        self.collate = TextCollate(tokenizer, max_length)

    @property
    def max_length(self) -> int:
        return self.collate.max_length

    def setup(self, stage: str | None = None) -> None:
        built = self.train_dataset is None
        super().setup(stage)
        if built:
            texts = self.train_dataset.texts
            truncated = self.collate.count_truncated(texts)
            if truncated:
                warnings.warn(
                    f"{truncated} of {len(texts)} training texts are longer than max_length={self.max_length} "
                    f"tokens and are truncated to their first {self.max_length} tokens.",
                    UserWarning,
                    stacklevel=2,
                )


def read_text_table(path: str | Path, text_column: str, label_column: str) -> tuple[list[str], list[str]]:
    """``(texts, labels)`` from a CSV, TSV or JSON Lines file (``.bz2``/``.gz``/``.xz`` compressed or not).

    Read by :func:`~lightning_aca.data.reader.read_table`: the format follows the suffix before
    any compression suffix (``.tsv`` tab-separated, ``.jsonl``/``.json`` one JSON object per line,
    anything else CSV with a header row).
    """
    table, _ = read_table(path)
    missing = [c for c in (text_column, label_column) if c not in table]
    if missing:
        raise ValueError(
            f"{path}: no column {missing} (columns: {list(table)}); set text_column= and label_column= to its "
            "text and label columns."
        )
    return table[text_column].tolist(), table[label_column].tolist()


def _label_indices(labels: list[str], classes: Sequence[Any] | None, where: str) -> list[int]:
    """Class indices of ``labels``: positions in ``classes``, or the labels themselves as integers >= 0."""
    if classes is not None:
        index = {str(c): i for i, c in enumerate(classes)}
        unknown = sorted({y for y in labels} - set(index))
        if unknown:
            raise ValueError(f"{where} has labels {unknown[:5]} not in classes={list(classes)}; list every class.")
        return [index[y] for y in labels]
    for row, label in enumerate(labels, start=1):
        if not (label.isdigit() and label.isascii()):
            raise ValueError(
                f"{where}, row {row}: label {label!r} is not a class index 0, 1, ...; give classes=[...] naming "
                "the classes in index order, or fix the label."
            )
    return [int(y) for y in labels]


def _check_texts(texts: list[str], where: str) -> None:
    for row, text in enumerate(texts, start=1):
        if not text.strip():
            raise ValueError(f"{where}, row {row}: empty text; remove empty documents from the file.")


class TextCSVDataModule(TextDataModule):
    """A user's text classification file (CSV, TSV or JSON Lines) with a fixed stratified split.

    Labels are class indices, or any values listed in ``classes`` (index = position there). With
    ``test_path`` the test set is that file; otherwise ``test_fraction`` of ``path`` is held
    out, stratified by label, fixed by ``split_seed``. Validation serves the test split.

    Args (the others as :class:`TextDataModule`):
        path: the file (``.csv``, ``.tsv``, ``.jsonl``, optionally ``.gz``/``.bz2``/``.xz``).
        text_column, label_column: the columns (keys) of text and label.
        classes: the class names in index order; ``None`` when labels are already indices.
        test_path: a separate test file of the same layout.
        test_fraction, split_seed: the held-out fraction of ``path`` and the split's seed.
    """

    def __init__(
        self,
        path: str,
        tokenizer: Any,
        text_column: str = "text",
        label_column: str = "label",
        classes: Sequence[Any] | None = None,
        test_path: str | None = None,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        max_length: int = 128,
        batch_size: int = 32,
        num_workers: int = 0,
    ) -> None:
        super().__init__(tokenizer, max_length, batch_size, num_workers)
        self.path, self.test_path = path, test_path
        self.text_column, self.label_column = text_column, label_column
        self.classes = None if classes is None else list(classes)
        self.num_classes = None if classes is None else len(self.classes)
        self.test_fraction = real("test_fraction", test_fraction, low=0, high=1, low_open=True, high_open=True)
        self.split_seed = non_negative_int("split_seed", split_seed)

    def _read(self, path: str) -> TextDataset:
        texts, labels = read_text_table(path, self.text_column, self.label_column)
        _check_texts(texts, str(path))
        return TextDataset(texts, _label_indices(labels, self.classes, str(path)))

    def build(self) -> tuple[TextDataset, TextDataset]:
        data = self._read(self.path)
        if self.num_classes is None:
            self.num_classes = int(data.targets.max()) + 1
        if len(data.targets.unique()) < 2:
            raise ValueError(
                f"{self.path}: every label is {int(data.targets[0])}; a classifier needs rows of at least two classes."
            )
        if self.test_path is not None:
            return data, self._read(self.test_path)
        try:
            train, _, test = stratified_split(data.targets, self.test_fraction, seed=self.split_seed)
        except ValueError as err:
            raise ValueError(f"{self.path}: {err}") from None
        return data.subset(train.tolist()), data.subset(test.tolist())
