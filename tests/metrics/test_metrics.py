import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from hypothesis import given
from hypothesis import strategies as st

from lightning_aca import CollectiveSuccess
from lightning_aca.metrics import GroupAccuracy, SignalErasureSuccess, WorstGroupAccuracy
from lightning_aca.metrics.functional import collective_success, worst_group_accuracy


def test_success_from_logits_probabilities_and_labels():
    logits = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [1.0, 0.5, 0.9], [0.1, 0.2, 0.3]])
    # argmax: 0, 1, 0, 2 -> two of four predicted y* = 0
    assert collective_success(logits, 0).item() == 0.5
    assert collective_success(logits.softmax(1), 0).item() == 0.5
    assert collective_success(torch.tensor([0, 1, 0, 2]), 0).item() == 0.5
    # top-2 sets: {0,1}, {1,2}, {0,2}, {2,1} -> y* = 0 in two
    assert collective_success(logits, 0, top_k=2).item() == 0.5
    assert collective_success(logits, 2, top_k=2).item() == 0.75
    # per-input success labels
    assert collective_success(logits, torch.tensor([0, 1, 2, 2])).item() == 0.75


def test_success_accumulates_over_batches_and_resets():
    m = CollectiveSuccess(target_class=1)
    m.update(torch.tensor([1, 1, 0]))
    m.update(torch.tensor([[0.0, 5.0], [5.0, 0.0]]))
    assert m.compute().item() == pytest.approx(3 / 5)
    m.reset()
    assert torch.isnan(m.compute())
    m.update(torch.tensor([1]))
    assert m.compute().item() == 1.0


@given(st.lists(st.lists(st.integers(0, 4), min_size=1, max_size=20), min_size=1, max_size=6))
def test_batched_equals_functional_on_concatenation(batches):
    m = CollectiveSuccess(target_class=2)
    for b in batches:
        m.update(torch.tensor(b))
    whole = torch.tensor([v for b in batches for v in b])
    assert m.compute().item() == pytest.approx(collective_success(whole, 2).item())


def test_erasure_success_compares_predictions():
    m = SignalErasureSuccess()
    m.update(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0]))
    m.update(torch.tensor([1, 1]), torch.tensor([1, 0]))
    assert m.compute().item() == 0.5  # agreements: yes, no, yes, no


def test_group_and_worst_group_accuracy():
    preds = torch.tensor([0, 1, 1, 0, 1, 1])
    labels = torch.tensor([0, 1, 0, 0, 1, 0])
    groups = torch.tensor([0, 0, 1, 1, 2, 2])
    # group 0: 2/2, group 1: 1/2, group 2: 1/2; group 3 never seen
    g = GroupAccuracy(4)
    g.update(preds, labels, groups)
    acc = g.compute()
    assert acc[:3].tolist() == [1.0, 0.5, 0.5] and torch.isnan(acc[3])
    w = WorstGroupAccuracy(4)
    w.update(preds[:2], labels[:2], groups[:2])
    assert w.compute().item() == 1.0
    w.update(preds[2:], labels[2:], groups[2:])
    assert w.compute().item() == 0.5 == worst_group_accuracy(preds, labels, groups, 4).item()


def test_merge_state_combines_two_workers():
    a, b = CollectiveSuccess(target_class=0), CollectiveSuccess(target_class=0)
    a.update(torch.tensor([0, 0, 1]))
    b.update(torch.tensor([1, 1, 1, 0]))
    a.merge_state(b)
    assert a.compute().item() == pytest.approx(3 / 7)
    wa, wb = WorstGroupAccuracy(2), WorstGroupAccuracy(2)
    wa.update(torch.tensor([0, 0]), torch.tensor([0, 0]), torch.tensor([0, 1]))
    wb.update(torch.tensor([1, 1]), torch.tensor([0, 0]), torch.tensor([1, 1]))
    wa.merge_state(wb)
    assert wa.compute().item() == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: CollectiveSuccess(target_class=-1), "target_class"),
        (lambda: CollectiveSuccess(top_k=0), "top_k"),
        (lambda: GroupAccuracy(0), "num_groups"),
        (lambda: CollectiveSuccess().update(torch.tensor([1])), "success_labels"),
        (lambda: CollectiveSuccess(target_class=0).update(torch.rand(3)), "preds must be"),
        (lambda: CollectiveSuccess(target_class=0, top_k=3).update(torch.rand(2, 2)), "exceeds the number of classes"),
        (
            lambda: WorstGroupAccuracy(2).update(torch.tensor([0]), torch.tensor([0]), torch.tensor([5])),
            "groups must lie",
        ),
        (lambda: SignalErasureSuccess().update(torch.tensor([0, 1]), torch.tensor([0])), "same inputs"),
    ],
)
def test_bad_inputs(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_plot_returns_a_figure():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    m = CollectiveSuccess(target_class=0)
    m.update(torch.tensor([0, 1]))
    fig, ax = m.plot()
    assert fig is not None and ax is not None


def _sync_worker(rank, init_file, out):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    s = CollectiveSuccess(target_class=0)
    w = WorstGroupAccuracy(2)
    if rank == 0:
        s.update(torch.tensor([0, 0, 0, 1]))  # 3/4
        w.update(torch.tensor([0, 0]), torch.tensor([0, 0]), torch.tensor([0, 0]))
    else:
        s.update(torch.tensor([1, 1]))  # 0/2
        w.update(torch.tensor([1, 0]), torch.tensor([0, 0]), torch.tensor([1, 1]))
    out[rank] = torch.tensor([s.compute().item(), w.compute().item()])
    dist.destroy_process_group()


def test_two_process_gloo_sync(tmp_path):
    out = torch.zeros(2, 2).share_memory_()
    mp.spawn(_sync_worker, args=(str(tmp_path / "init"), out), nprocs=2)
    # global: 3 of 6 signal inputs succeed; group 0 2/2, group 1 1/2 -> worst 0.5
    assert out[0].tolist() == out[1].tolist() == [0.5, 0.5]


@pytest.mark.parametrize("value", [True, 1.0])
def test_class_counts_and_top_k_refuse_non_ints(value):
    with pytest.raises(TypeError, match="top_k must be a positive int"):
        CollectiveSuccess(top_k=value)
    with pytest.raises(TypeError, match="num_groups must be a positive int"):
        GroupAccuracy(value)
    with pytest.raises(TypeError, match="target_class must be a non-negative int"):
        CollectiveSuccess(target_class=value)
