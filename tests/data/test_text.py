import gzip
import json

import numpy as np
import pytest
import torch

from lightning_aca import (
    CollectiveDataModule,
    FeatureOnlyPlanting,
    SignalErasing,
    SignalPlanting,
    TextCSVDataModule,
    TokenInsertion,
    estimate_uniqueness,
)
from lightning_aca.data.text import TextCollate, TextDataset


@pytest.fixture(scope="module")
def collate(tiny_text_model):
    return TextCollate(str(tiny_text_model), max_length=8)


@pytest.fixture
def csv_file(tmp_path, make_texts):
    texts, labels = make_texts(100)
    path = tmp_path / "toy.csv"
    path.write_text("text,label\n" + "".join(f'"{t}",{y}\n' for t, y in zip(texts, labels, strict=True)))
    return path


def _module(csv_file, tiny_text_model, **kwargs):
    options = dict(path=str(csv_file), tokenizer=str(tiny_text_model), max_length=32, batch_size=8)
    return TextCSVDataModule(**(options | kwargs))


def test_text_dataset_checks_every_item():
    ds = TextDataset(["good film", "bad plot"], [1, 0])
    assert ds[1] == ("bad plot", 0) and ds.targets.tolist() == [1, 0]
    assert ds.subset([1]).texts == ["bad plot"]
    with pytest.raises(TypeError, match=r"texts\[1\] is int"):
        TextDataset(["good", 3], [1, 0])
    with pytest.raises(ValueError, match=r"texts\[0\] is empty"):
        TextDataset(["  ", "bad"], [1, 0])
    with pytest.raises(ValueError, match=r"labels\[1\]"):
        TextDataset(["good", "bad"], [1, -1])
    with pytest.raises(ValueError, match="2 texts but 1 labels"):
        TextDataset(["good", "bad"], [1])


def test_collate_pads_to_the_longest_text_and_truncates_to_max_length(collate):
    batch = collate([("good film", 1), ("the plot was dull", 0)])
    enc, labels = batch
    assert labels.tolist() == [1, 0]
    assert enc["input_ids"].shape == (2, 6)  # [CLS] + 4 words + [SEP]: padded to the longest
    assert enc["attention_mask"].tolist() == [[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]]
    long = collate([("the film " * 10, 0)])[0]
    assert long["input_ids"].shape == (1, 8) and long["input_ids"][0, -1].item() == 3  # [SEP] kept last
    assert collate.count_truncated(["the film " * 10, "good", "the film " * 3]) == 1  # 8 tokens fit exactly


def test_collate_tokenizes_every_text_field_of_tuples_and_dicts(collate):
    signal_batch = collate([("good ~", 1, "good", 0, True), ("bad ~", 1, "bad", 0, False)])
    assert [type(f).__name__ for f in signal_batch] == ["dict", "Tensor", "dict", "Tensor", "Tensor"]
    assert signal_batch[0]["input_ids"].shape == (2, 4) and signal_batch[2]["input_ids"].shape == (2, 3)
    as_dict = collate([{"text": "good", "label": 1}, {"text": "bad", "label": 0}])
    assert set(as_dict) == {"text", "label"} and as_dict["label"].tolist() == [1, 0]
    with pytest.raises(TypeError, match="field 0 holds text"):
        collate([("good", 1), (torch.zeros(2), 0)])


def test_a_token_split_into_pieces_warns_with_the_count(collate):
    with pytest.warns(UserWarning, match=r"'zxq' is split by the tokenizer into 3 pieces"):
        collate.check_signal(TokenInsertion("zxq"))
    collate.check_signal(TokenInsertion("~"))  # one piece: silent


def test_truncation_is_stated_once_with_the_count(csv_file, tiny_text_model):
    dm = _module(csv_file, tiny_text_model, max_length=12)
    with pytest.warns(UserWarning, match=r"^(\d+) of 80 training texts are longer than max_length=12") as record:
        dm.setup("fit")
    expected = dm.collate.count_truncated(dm.train_dataset.texts)
    assert 0 < expected < 80 and str(record[0].message).startswith(f"{expected} of 80")


def test_csv_jsonl_and_tsv_gz_give_the_same_split(tmp_path, csv_file, tiny_text_model, make_texts):
    texts, labels = make_texts(100)
    names = ["neg" if y == 0 else "pos" for y in labels]
    jsonl = tmp_path / "toy.jsonl"
    jsonl.write_text("".join(json.dumps({"review": t, "y": n}) + "\n" for t, n in zip(texts, names, strict=True)))
    tsv = tmp_path / "toy.tsv.gz"
    with gzip.open(tsv, "wt") as f:
        f.write("text\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in zip(texts, labels, strict=True)))
    modules = [
        _module(csv_file, tiny_text_model),
        _module(jsonl, tiny_text_model, text_column="review", label_column="y", classes=["neg", "pos"]),
        _module(tsv, tiny_text_model),
    ]
    for dm in modules:
        dm.setup("fit")
    first = modules[0]
    assert first.num_classes == 2 and len(first.train_dataset) == 80 and len(first.test_dataset) == 20
    assert first.test_dataset.targets.sum().item() == 10  # stratified: 10 of each class held out
    for dm in modules[1:]:
        assert dm.train_dataset.texts == first.train_dataset.texts
        assert torch.equal(dm.train_dataset.targets, first.train_dataset.targets)


def test_text_file_errors_name_the_fix(tmp_path, csv_file, tiny_text_model):
    with pytest.raises(ValueError, match=r"toy\.csv: no column \['body'\].*text_column="):
        _module(csv_file, tiny_text_model, text_column="body").setup("fit")
    empty = tmp_path / "empty_doc.csv"
    empty.write_text('text,label\n"good film",1\n"",0\n')
    with pytest.raises(ValueError, match=r"empty_doc\.csv, row 2: empty text"):
        _module(empty, tiny_text_model).setup("fit")
    named = tmp_path / "named.csv"
    named.write_text("text,label\ngood,pos\nbad,neg\n")
    with pytest.raises(ValueError, match=r"named\.csv, row 1: label 'pos' is not a class index.*classes=\[\.\.\.\]"):
        _module(named, tiny_text_model).setup("fit")
    with pytest.raises(ValueError, match=r"labels \['neg'\] not in classes=\['pos'\]"):
        _module(named, tiny_text_model, classes=["pos"]).setup("fit")
    with pytest.raises(FileNotFoundError, match=r"missing\.csv: no such file"):
        _module(tmp_path / "missing.csv", tiny_text_model).setup("fit")


def _planting(csv_file, tiny_text_model, alpha, strategy=None, seed=0):
    strategy = strategy or SignalPlanting(TokenInsertion("~", every=3), target_class=1)
    dm = CollectiveDataModule(strategy, alpha, seed, datamodule=_module(csv_file, tiny_text_model))
    dm.setup("fit")
    return dm


def test_members_are_nested_and_seeded_on_text(csv_file, tiny_text_model):
    small = _planting(csv_file, tiny_text_model, 0.1).train_dataset.members
    large = _planting(csv_file, tiny_text_model, 0.3).train_dataset.members
    assert len(small) == 8 and len(large) == 24 and set(small) <= set(large)
    assert np.array_equal(small, _planting(csv_file, tiny_text_model, 0.1).train_dataset.members)
    assert not np.array_equal(small, _planting(csv_file, tiny_text_model, 0.1, seed=1).train_dataset.members)


def test_planting_rewrites_the_raw_text_of_exactly_the_members(csv_file, tiny_text_model):
    dm = _planting(csv_file, tiny_text_model, 0.25)
    train, base = dm.train_dataset, dm.train_dataset.dataset
    g = TokenInsertion("~", every=3)
    for i in range(len(train)):
        (text, label), (clean, true) = train[i], base[i]
        if train.is_member[i]:
            assert text == g(clean) and label == 1
        else:
            assert (text, label) == (clean, true)
    assert train.injection == "item"
    enc, labels = next(iter(dm.train_dataloader()))[:2]
    tilde = 5  # "~" in the tiny vocabulary
    assert enc["input_ids"].shape[0] == labels.shape[0] == 8
    member_rows = sum(bool(train.is_member[i]) for i in range(len(train)))
    assert member_rows == 20 and int((labels == 1).sum()) >= 1 and enc["input_ids"].dtype == torch.long
    assert all(
        tilde not in base_ids for base_ids in dm.datamodule.collate.encode(base.texts[:40])["input_ids"].tolist()
    )


def test_signal_evaluation_set_holds_marked_texts_of_other_labels(csv_file, tiny_text_model):
    dm = _planting(csv_file, tiny_text_model, 0.1)
    signal, test = dm.signal_test_dataset, dm.datamodule.test_dataset
    g = TokenInsertion("~", every=3)
    assert len(signal) == 10  # the 10 held-out texts of label 0
    for k in range(len(signal)):
        text, label = signal[k]
        clean, true = test[int(signal.indices[k])]
        assert label == 1 and true == 0 and text == g(clean) and g.carries(text)
    enc, success_label, clean_enc, true_label = next(iter(dm.signal_test_dataloader(return_clean=True)))
    assert enc["input_ids"].shape[0] == 10 and (enc["input_ids"] == 5).any(1).all()  # every text holds "~"
    assert not (clean_enc["input_ids"] == 5).any() and success_label.eq(1).all() and true_label.eq(0).all()
    clean = next(iter(dm.clean_test_dataloader()))
    assert isinstance(clean[0], dict) and clean[1].shape == (20,)


def test_feature_only_and_erasing_on_text(csv_file, tiny_text_model):
    g = TokenInsertion("~", every=3)
    feature_only = _planting(csv_file, tiny_text_model, 0.25, FeatureOnlyPlanting(g, target_class=1)).train_dataset
    labels = feature_only.dataset.targets
    assert len(feature_only.members) == 10 and labels[feature_only.members].eq(1).all()  # 25% of the 40 label-1 texts
    erasing = _planting(csv_file, tiny_text_model, 0.25, SignalErasing(g))
    i = int(erasing.train_dataset.members[0])
    assert erasing.train_dataset[i] == (g(erasing.train_dataset.dataset[i][0]), erasing.train_dataset.dataset[i][1])
    assert len(erasing.signal_test_dataset) == 20  # erasing is judged on every held-out text


def test_planting_a_split_token_warns_at_setup(csv_file, tiny_text_model):
    with pytest.warns(UserWarning, match="3 pieces"):
        _planting(csv_file, tiny_text_model, 0.1, SignalPlanting(TokenInsertion("zxq"), target_class=1))


def test_xi_for_text_counts_documents_already_carrying_the_pattern(csv_file, tiny_text_model):
    g = TokenInsertion("~", every=2)
    corpus = ["good ~", "a b ~ c d ~", "a b c", "a ~ b", "~ a", "great film ~ now"]
    # carrying: "good ~" (short text + token), "a b ~ c d ~", "great film ~ now"; not: no token,
    # the token after one word of three, the token first
    assert estimate_uniqueness(corpus, g) == pytest.approx(3 / 6)
    with pytest.raises(TypeError, match="carries"):
        estimate_uniqueness(["a b"], lambda x: x)
    from lightning_aca.experiment import uniqueness

    dm = _planting(csv_file, tiny_text_model, 0.1)
    base = dm.train_dataset.dataset
    assert uniqueness([base[i][0] for i in range(len(base))], dm.strategy) == 0.0  # no clean toy review holds "~"
