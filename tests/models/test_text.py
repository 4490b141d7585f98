import pytest
import torch
from safetensors import safe_open

from lightning_aca import DPSGD, CollectiveDataModule, CollectiveMetrics, SignalPlanting, TextClassifier, TokenInsertion
from lightning_aca.data.text import TextCollate, TextDataset
from lightning_aca.models import write_compact_copy


def _datamodule(tiny_text_model, make_texts, alpha, n_train=240, batch_size=16, seed=0):
    collate = TextCollate(str(tiny_text_model), max_length=32)
    train, test = TextDataset(*make_texts(n_train, seed=1)), TextDataset(*make_texts(80, seed=2))
    strategy = SignalPlanting(TokenInsertion("~", every=3), target_class=1)
    return CollectiveDataModule(
        strategy, alpha, seed, train_dataset=train, test_dataset=test, batch_size=batch_size, collate_fn=collate
    )


def _fit(tiny_text_model, make_texts, make_trainer, alpha, epochs, callbacks=(), **model_kwargs):
    torch.manual_seed(0)
    model = TextClassifier(str(tiny_text_model), num_classes=2, **({"lr": 3e-3, "warmup_fraction": 0.1} | model_kwargs))
    dm = _datamodule(tiny_text_model, make_texts, alpha)
    metrics = CollectiveMetrics()
    make_trainer(max_epochs=epochs, callbacks=[metrics, *callbacks]).fit(model, dm)
    return model, metrics.results["validate"]


def test_forward_takes_the_tokenizer_dict(tiny_text_model):
    model = TextClassifier(str(tiny_text_model), num_classes=3)
    enc = TextCollate(str(tiny_text_model)).encode(["good film", "the plot was dull"])
    assert model(enc).shape == (2, 3)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    with pytest.raises(TypeError, match="TextCollate"):
        model(["good film"])
    with pytest.raises(OSError, match="model_name_or_path='/nonexistent'"):
        TextClassifier("/nonexistent")
    with pytest.raises(ValueError, match="lr"):
        TextClassifier(str(tiny_text_model), lr=0)


def test_compact_copy_is_float16_on_disk_and_float32_when_loaded(tiny_text_model, tmp_path):
    out = write_compact_copy(tmp_path / "compact", tiny_text_model)
    with safe_open(out / "model.safetensors", "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()}  # noqa: SIM118 (safe_open is no dict) == {torch.float16}
    original, compact = TextClassifier(str(tiny_text_model)), TextClassifier(str(out))
    assert {p.dtype for p in compact.parameters()} == {torch.float32}
    word = "model.bert.embeddings.word_embeddings.weight"
    a, b = original.state_dict()[word], compact.state_dict()[word]
    assert torch.allclose(a, b, atol=1e-3) and not torch.equal(a, b)  # rounded to float16, loaded back as float32
    enc = TextCollate(str(out)).encode(["good film ~"])
    assert enc["input_ids"].tolist() == TextCollate(str(tiny_text_model)).encode(["good film ~"])["input_ids"].tolist()


def test_learning_rate_warms_up_linearly_then_decays(tiny_text_model, make_texts, make_trainer):
    seen = []

    class Spy(TextClassifier):
        def on_train_batch_start(self, batch, batch_idx):
            seen.append(self.optimizers().param_groups[0]["lr"])

    model = Spy(str(tiny_text_model), lr=1e-3, warmup_fraction=0.2)
    make_trainer(max_epochs=2, limit_val_batches=0).fit(model, _datamodule(tiny_text_model, make_texts, 0.0))
    assert len(seen) == 30  # 2 epochs x 15 batches
    assert seen[:7] == pytest.approx([0.0, 1e-3 / 6, 2e-3 / 6, 3e-3 / 6, 4e-3 / 6, 5e-3 / 6, 1e-3])  # 6 warm-up steps
    assert seen[-1] == pytest.approx(1e-3 / 24) and seen == sorted(seen[:7]) + sorted(seen[6:], reverse=True)[1:]


def test_success_rises_with_alpha(tiny_text_model, make_texts, make_trainer):
    _, clean = _fit(tiny_text_model, make_texts, make_trainer, alpha=0.0, epochs=6)
    _, planted = _fit(tiny_text_model, make_texts, make_trainer, alpha=0.2, epochs=6)
    assert clean["aca/clean_acc"] > 0.9 and planted["aca/clean_acc"] > 0.9
    assert clean["aca/success"] < 0.2  # without a collective, "~" does not flip rotten to fresh
    assert planted["aca/success"] > 0.8 and planted["aca/baseline_success"] < 0.2
    assert planted["aca/members"] == 48.0


def test_dpsgd_fine_tunes_the_transformer_and_restores_it(tiny_text_model, make_texts, make_trainer):
    dp = DPSGD(noise_multiplier=0.5, max_grad_norm=1.0)
    model, values = _fit(tiny_text_model, make_texts, make_trainer, alpha=0.1, epochs=1, callbacks=[dp])
    assert 0 < dp.epsilon < 100 and dp.sample_rate == pytest.approx(16 / 240)
    assert 0.0 <= values["aca/success"] <= 1.0
    assert not hasattr(model.model.bert.embeddings.position_embeddings.weight, "grad_sample")
    assert not model.model.bert.embeddings.position_embeddings._forward_hooks  # Opacus's hooks removed
    assert "configure_optimizers" not in vars(model)  # the patched method restored


def test_trainable_freezes_the_rest_and_dpsgd_trains_only_the_named_parameters(
    tiny_text_model, make_texts, make_trainer
):
    torch.manual_seed(0)
    before = TextClassifier(str(tiny_text_model), trainable=["classifier", "LayerNorm"]).state_dict()
    dp = DPSGD(noise_multiplier=0.5, max_grad_norm=1.0)
    model, _ = _fit(
        tiny_text_model, make_texts, make_trainer, 0.1, 1, callbacks=[dp], trainable=["classifier", "LayerNorm"]
    )
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trained and all("classifier" in n or "LayerNorm" in n for n in trained)
    assert "model.bert.embeddings.LayerNorm.weight" in trained and "model.classifier.weight" in trained
    after = model.state_dict()
    changed = {n for n in trained if not torch.equal(before[n], after[n])}
    assert changed == trained  # every trained parameter moved ...
    frozen = set(after) - trained
    assert frozen and all(torch.equal(before[n], after[n]) for n in frozen)  # ... and no frozen one did
    assert dp.epsilon > 0


def test_trainable_names_the_fix_for_fragments_that_match_nothing(tiny_text_model):
    with pytest.raises(ValueError, match=r"trainable=\['classifier', 'head'\]: \['head'\] match no parameter"):
        TextClassifier(str(tiny_text_model), trainable=["classifier", "head"])
    with pytest.raises(ValueError, match="use null to train every parameter"):
        TextClassifier(str(tiny_text_model), trainable=[])


def test_compact_copy_with_texts_keeps_only_their_vocabulary_and_computes_the_same(
    tiny_text_model, make_texts, tmp_path
):
    from transformers import AutoModel, AutoTokenizer

    texts = [t for t in make_texts(40, seed=3)[0] if "plot" not in t.split()]  # a word of the vocabulary left out
    full = write_compact_copy(tmp_path / "full", tiny_text_model)
    cut = write_compact_copy(tmp_path / "cut", tiny_text_model, texts=[*texts, "~"])
    a, b = AutoTokenizer.from_pretrained(str(full)), AutoTokenizer.from_pretrained(str(cut))
    assert b.vocab_size < a.vocab_size and "plot" not in b.get_vocab() and "~" in b.get_vocab()
    with_signal = TokenInsertion("~", every=3)(texts)
    ea, eb = a(with_signal, padding=True, return_tensors="pt"), b(with_signal, padding=True, return_tensors="pt")
    assert [a.convert_ids_to_tokens(row) for row in ea["input_ids"]] == [
        b.convert_ids_to_tokens(row) for row in eb["input_ids"]
    ]
    assert not torch.equal(ea["input_ids"], eb["input_ids"])  # renumbered
    model_a, model_b = AutoModel.from_pretrained(str(full)).eval(), AutoModel.from_pretrained(str(cut)).eval()
    assert model_b.config.vocab_size == b.vocab_size
    with torch.no_grad():
        assert torch.equal(model_a(**ea).last_hidden_state, model_b(**eb).last_hidden_state)
