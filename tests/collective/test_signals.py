import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from lightning_aca import BlendPattern, FeatureAssignment, PixelPatch, TokenInsertion


@pytest.mark.parametrize(
    ("location", "rows", "cols"),
    [
        ("top_left", (0, 2), (0, 2)),
        ("bottom_right", (6, 8), (6, 8)),
        ("top_right", (0, 2), (6, 8)),
        ((3, 1), (3, 5), (1, 3)),
    ],
)
def test_pixel_patch_writes_exactly_the_patch(location, rows, cols):
    x = torch.rand(1, 8, 8) * 0.5
    out = PixelPatch(size=2 if location != (3, 1) else (2, 2), value=0.9, location=location)(x)
    expected = x.clone()
    expected[..., rows[0] : rows[1], cols[0] : cols[1]] = 0.9
    assert torch.equal(out, expected)
    assert int((out != x).sum()) == 4
    assert not torch.equal(out, x)  # input not modified in place


def test_pixel_patch_batch_colour_and_flat():
    batch = torch.zeros(5, 3, 6, 6)
    out = PixelPatch(size=1, value=[0.1, 0.2, 0.3], location="top_left")(batch)
    assert torch.allclose(out[:, :, 0, 0], torch.tensor([0.1, 0.2, 0.3]).expand(5, 3))
    assert int((out != 0).sum()) == 15
    flat = PixelPatch(size=2, value=1.0, location="bottom_right", image_shape=(3, 3))(torch.zeros(4, 9))
    assert flat[0].tolist() == [0, 0, 0, 0, 1, 1, 0, 1, 1]


def test_pixel_patch_center_mask():
    assert PixelPatch(size=2, location="center").mask(4, 4).nonzero().tolist() == [[1, 1], [1, 2], [2, 1], [2, 2]]


@pytest.mark.parametrize(
    ("kwargs", "x", "match"),
    [
        ({"size": 9}, torch.zeros(1, 8, 8), "larger than the 8x8 image"),
        ({"size": 2, "location": (7, 0)}, torch.zeros(1, 8, 8), "does not fit"),
        ({"size": 2, "image_shape": (3, 3)}, torch.zeros(10), "last dimension of 9"),
        ({"size": 2}, torch.zeros(8), "image_shape"),
        ({"size": 1, "value": [1.0, 2.0]}, torch.zeros(3, 4, 4), "one per channel"),
    ],
)
def test_pixel_patch_bad_input_names_the_problem(kwargs, x, match):
    with pytest.raises(ValueError, match=match):
        PixelPatch(**kwargs)(x)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"size": 0}, "size"), ({"location": "middle"}, "location"), ({"location": (-1, 0)}, "location")],
)
def test_pixel_patch_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PixelPatch(**kwargs)


def test_pixel_patch_rejects_non_tensors():
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        PixelPatch()([[0.0]])


def test_blend_pattern_mixes_with_weight():
    x, pattern = torch.full((1, 2, 2), 0.2), torch.ones(1, 2, 2)
    assert torch.allclose(BlendPattern(pattern, weight=0.5)(x), torch.full((1, 2, 2), 0.6))
    assert torch.allclose(BlendPattern(pattern, weight=0.0)(x), x)
    with pytest.raises(ValueError, match="weight"):
        BlendPattern(pattern, weight=1.5)
    with pytest.raises(ValueError, match="broadcast"):
        BlendPattern(torch.ones(3, 3), weight=0.5)(torch.zeros(1, 2, 2))


@given(n_words=st.integers(0, 60), every=st.integers(1, 12))
def test_token_insertion_inserts_the_right_count(n_words, every):
    text = " ".join(f"w{i}" for i in range(n_words))
    out = TokenInsertion("<s>", every=every)(text).split()
    assert out.count("<s>") == n_words // every
    assert [w for w in out if w != "<s>"] == text.split()
    assert all(out[(every + 1) * k + every] == "<s>" for k in range(n_words // every))


def test_token_insertion_batch_and_errors():
    assert TokenInsertion("#", every=1)(["a b", "c"]) == ["a # b #", "c #"]
    with pytest.raises(ValueError, match="every"):
        TokenInsertion("#", every=0)
    with pytest.raises(ValueError, match="token"):
        TokenInsertion("  ")
    with pytest.raises(TypeError, match="string"):
        TokenInsertion("#")(3)


def test_feature_assignment_sets_features_on_items_and_batches():
    g = FeatureAssignment(indices=[1, -1], values=[2.0, 3.0])
    assert g(torch.zeros(4)).tolist() == [0, 2, 0, 3]
    assert g(torch.ones(2, 4)).tolist() == [[1, 2, 1, 3]] * 2
    with pytest.raises(ValueError, match="out of range"):
        FeatureAssignment([7], 1.0)(torch.zeros(4))
    with pytest.raises(ValueError, match="one per index"):
        FeatureAssignment([0, 1], [1.0, 2.0, 3.0])


@pytest.mark.parametrize(
    "signal",
    [
        PixelPatch(2, value=1.0),
        PixelPatch(3, value=(0.2, 0.5, 0.9), location=(1, 2)),
        PixelPatch(2, value=0.7, image_shape=(4, 4), location="top_left"),
        BlendPattern(pattern=torch.ones(3, 6, 6), weight=0.3),
    ],
)
def test_apply_rows_in_place_equals_calling_the_signal_on_those_rows(signal):
    shape = (16,) if getattr(signal, "image_shape", None) else (3, 6, 6)
    x = torch.rand(7, *shape)
    rows = torch.tensor([0, 3, 6])
    want = x.clone()
    want[rows] = signal(x[rows])
    signal.apply_rows_(x, rows)
    assert torch.equal(x, want)
