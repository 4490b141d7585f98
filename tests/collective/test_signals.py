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


@given(n_words=st.integers(1, 60), every=st.integers(1, 12))
def test_token_insertion_inserts_the_right_count(n_words, every):
    text = " ".join(f"w{i}" for i in range(n_words))
    g = TokenInsertion("<s>", every=every)
    out = g(text).split()
    assert out.count("<s>") == max(1, n_words // every)
    assert [w for w in out if w != "<s>"] == text.split()
    assert all(out[(every + 1) * k + every] == "<s>" for k in range(n_words // every))
    assert g.carries(g(text)) and not g.carries(text)


def test_token_insertion_signal_set_membership():
    g = TokenInsertion("~", every=3)
    assert g("a b") == "a b ~" and g("a b c d") == "a b c ~ d"
    assert g.carries("a b c ~ d") and g.carries("a ~") and g.carries("a  b\tc ~")  # words, not spacing
    assert not g.carries("a b c d ~")  # the token at the wrong place
    assert not g.carries("a b c ~ d e f")  # the second token is missing
    assert not g.carries("~")  # no word before the token: g never produces it


def test_token_insertion_batch_and_errors():
    assert TokenInsertion("#", every=1)(["a b", "c"]) == ["a # b #", "c #"]
    with pytest.raises(ValueError, match="every"):
        TokenInsertion("#", every=0)
    with pytest.raises(ValueError, match="token"):
        TokenInsertion("  ")
    with pytest.raises(ValueError, match="one word"):
        TokenInsertion("two words")
    with pytest.raises(TypeError, match="string"):
        TokenInsertion("#")(3)
    with pytest.raises(ValueError, match="empty text"):
        TokenInsertion("#")("   ")
    with pytest.raises(TypeError, match="text"):
        TokenInsertion("#").check(torch.zeros(3))


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


@pytest.mark.parametrize(
    ("value", "dtype", "match"),
    [
        (0.5, torch.uint8, r"not a whole number.*torch\.uint8 \(values 0–255\).*truncated to 0"),
        (300, torch.uint8, r"outside the range 0–255 of the images' dtype torch\.uint8"),
        (-1, torch.uint8, "outside the range"),
        ((255, 0.5, 0), torch.uint8, "not a whole number"),
        (2, torch.bool, "outside the range 0–1"),
    ],
)
def test_pixel_patch_value_must_fit_an_integer_dtype_on_every_call(value, dtype, match):
    g = PixelPatch(1, value=value, location="top_left")
    x = torch.zeros(2, 3 if isinstance(value, tuple) else 1, 4, 4, dtype=dtype)
    with pytest.raises(ValueError, match=match):
        g(x)
    with pytest.raises(ValueError, match=match):
        g.apply_rows_(x, torch.tensor([0]))


def test_pixel_patch_check_refuses_unit_values_on_data_above_one():
    for x in (
        torch.randint(0, 256, (1, 8, 8), dtype=torch.uint8).index_fill_(2, torch.tensor([0]), 200),
        torch.rand(1, 8, 8) * 255,  # float images left in 0–255
        torch.randint(0, 17, (1, 8, 8)).index_fill_(2, torch.tensor([0]), 16),  # raw digits, int64
    ):
        for value in (1.0, [1]) if not x.is_floating_point() else (1.0, 0.8, [0.5]):
            with pytest.raises(ValueError, match=r"looks like a value for images in \[0, 1\].*value=255"):
                PixelPatch(2, value=value).check(x)
    PixelPatch(2, value=0).check(torch.full((1, 4, 4), 255, dtype=torch.uint8))  # black fits any scale
    PixelPatch(2, value=255).check(torch.full((1, 4, 4), 255, dtype=torch.uint8))
    PixelPatch(2, value=1.0).check(torch.rand(1, 4, 4))  # images in [0, 1]
    PixelPatch(2, value=1.0).check(torch.randn(1, 4, 4) * 3)  # standardized: negative values, any scale
    PixelPatch(2, value=1).check(torch.randint(0, 2, (1, 4, 4)))  # binary integer images
    assert PixelPatch(1, value=255, location="top_left")(torch.zeros(1, 2, 2, dtype=torch.uint8))[0, 0, 0] == 255


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"size": True}, TypeError, "size must be a positive int"),
        ({"size": 2.0}, TypeError, "size"),
        ({"size": (2, 3, 4)}, ValueError, "size"),
        ({"location": (1.0, 0)}, TypeError, "location must be a non-negative int"),
        ({"location": (True, 0)}, TypeError, "location"),
        ({"image_shape": (8, 0)}, ValueError, "image_shape must be a positive int"),
        ({"value": float("nan")}, ValueError, "value must be a finite number"),
        ({"value": "white"}, TypeError, "value must be a real number"),
        ({"value": []}, ValueError, "one number per channel"),
        ({"value": [[1.0]]}, TypeError, r"value\[0\] must be a real number"),
    ],
)
def test_pixel_patch_arguments_are_validated(kwargs, error, match):
    with pytest.raises(error, match=match):
        PixelPatch(**kwargs)


def test_other_signals_validate_their_numbers():
    with pytest.raises(TypeError, match="every must be a positive int"):
        TokenInsertion("#", every=True)
    with pytest.raises(TypeError, match="weight must be a real number"):
        BlendPattern(torch.ones(1), weight="0.5")
    with pytest.raises(TypeError, match="indices must be an int"):
        FeatureAssignment([0.5], 1.0)
    assert BlendPattern(torch.ones(1), weight=torch.tensor(0.5)).weight == 0.5
