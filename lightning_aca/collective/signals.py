"""Signals g(x): the transformation a collective plants in its members' inputs.

Hardt, Mazumdar, Mendler-Dünner, Zrnic, "Algorithmic Collective Action in Machine Learning",
ICML 2023, §3: a *signal* is a map g: X → X; the collective's data carry g(x) and success is
measured on g(x) for held-out x. Every signal here works on one item and on a batch: image
signals act on the trailing (H, W) dimensions, tabular signals on the trailing feature
dimension, text signals on a string or a list of strings. Inputs are never modified in place.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from lightning_aca.validation import fraction, integer, non_negative_int, one_of, positive_int, real

_CORNERS = ("top_left", "top_right", "bottom_left", "bottom_right", "center")


class Signal(ABC):
    """A signal g: X → X (Hardt et al. 2023, §3). Call it on one item or on a batch.

    A subclass that maps a stacked batch ``(B, ...)`` exactly as it maps each item sets
    ``supports_batches = True``; data loading then applies it once per batch.
    """

    supports_batches: bool = False

    @abstractmethod
    def __call__(self, x: Any) -> Any:
        """Return g(x) without modifying ``x``."""

    def apply_rows_(self, x: Tensor, rows: Tensor) -> None:
        """Replace rows ``rows`` of the batch ``x`` by g of them, in place (``supports_batches`` signals).

        The collate-time injection path; a subclass that touches few entries (a patch) overrides it.
        """
        x[rows] = self(x[rows]).to(x.dtype)

    def check(self, x: Any) -> None:
        """Raise if g does not fit inputs like ``x`` in a way applying it would not reveal (default: none).

        Datasets call it once, on one input, before data loading.
        """
        return None


def _as_tensor(x: Any, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(
            f"{name} applies to torch.Tensor inputs, got {type(x).__name__}; convert the "
            "dataset's inputs to tensors (e.g. a ToTensor transform) before wrapping it."
        )
    return x


def _pair(name: str, value: Any, check: Any, kind: str) -> tuple[int, int]:
    """``value`` (one int, or two) as a pair of ints each passing ``check``."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != 2:
            raise ValueError(f"{name} must be {kind}, got {value!r}.")
        return check(name, value[0]), check(name, value[1])
    if isinstance(value, str):
        raise TypeError(f"{name} must be {kind}, got {value!r}.")
    number = check(name, value)
    return number, number


def _patch_value(value: Any) -> float | tuple[float, ...]:
    """A finite number, or a non-empty sequence of them (one per channel)."""
    if hasattr(value, "tolist") and getattr(value, "ndim", 0) == 1:
        value = value.tolist()
    if isinstance(value, Sequence) and not isinstance(value, str):
        if not value:
            raise ValueError("PixelPatch value must be a number or one number per channel, got an empty sequence.")
        return tuple(real(f"PixelPatch value[{i}]", v) for i, v in enumerate(value))
    return real("PixelPatch value", value)


class PixelPatch(Signal):
    """Set a rectangular patch of pixels to a fixed value: the paper's image signal.

    Hardt et al. 2023, §3 (signal planting with a pixel pattern). Works on tensors shaped
    ``(..., H, W)`` (grey or colour images, single or batched); for flat inputs shaped
    ``(..., H*W)`` pass ``image_shape=(H, W)``.

    ``value`` is written on the data's own scale, so it must fit the data: on integer images
    (e.g. uint8 in 0–255) it must be a whole number within the dtype's range, or the write would
    truncate or wrap it; and a value in (0, 1] on non-negative data that reach above 1 (integer
    or float images in 0–255, digits in 0–16) is refused by :meth:`check` as a value meant for
    images in [0, 1], which would write an almost black patch. The dtype rules apply on every
    call; :meth:`check` also looks at the data's range (``CollectiveDataset`` and
    ``SignalEvaluationDataset`` call it on one input before loading). ``value=0`` (a black
    patch) fits any scale.

    Args:
        size: patch side, or ``(height, width)``.
        value: pixel value written into the patch; a sequence gives one value per channel
            (the channel dimension is the one just before ``H``).
        location: a corner name (``"top_left"``, ``"top_right"``, ``"bottom_left"``,
            ``"bottom_right"``, ``"center"``) or the ``(row, col)`` of the patch's top-left pixel.
        image_shape: ``(H, W)`` for flat vector inputs; ``None`` for image-shaped tensors.

    Example:
        >>> g = PixelPatch(size=2, value=1.0, location="bottom_right")
        >>> g(torch.zeros(1, 4, 4))[0]
        tensor([[0., 0., 0., 0.],
                [0., 0., 0., 0.],
                [0., 0., 1., 1.],
                [0., 0., 1., 1.]])
        >>> PixelPatch(value=1.0).check(torch.full((1, 4, 4), 200, dtype=torch.uint8))
        Traceback (most recent call last):
        ...
        ValueError: PixelPatch value=1.0 looks like a value for images in [0, 1], but these images (dtype torch.uint8) reach 200: the patch would be almost black. Give value on the data's scale (value=255 for 0–255 images), or convert the images to floats in [0, 1] (e.g. torchvision's ToTensor) before wrapping the dataset.
    """

    supports_batches = True

    def __init__(
        self,
        size: int | Sequence[int] = 2,
        value: float | Sequence[float] = 1.0,
        location: str | Sequence[int] = "bottom_right",
        image_shape: Sequence[int] | None = None,
    ) -> None:
        self.size = _pair("PixelPatch size", size, positive_int, "a positive int or (height, width)")
        if isinstance(location, str):
            self.location = one_of("PixelPatch location", location, _CORNERS)
        else:
            self.location = _pair("PixelPatch location", location, non_negative_int, "a corner name or (row, col)")
        if image_shape is not None:
            image_shape = _pair("PixelPatch image_shape", image_shape, positive_int, "(H, W)")
        self.image_shape = image_shape
        self.value = _patch_value(value)

    def check(self, x: Any) -> None:
        """Raise if ``value`` does not fit inputs like ``x``: their dtype, or their range (see above)."""
        x = _as_tensor(x, "PixelPatch")
        self._check_dtype(x.dtype)
        top = max(self._values)
        if x.numel() and 0 < top <= 1 and bool(x.min() >= 0) and bool(x.max() > 1):
            highest = x.max().item()
            raise ValueError(
                f"PixelPatch value={self.value!r} looks like a value for images in [0, 1], but these images "
                f"(dtype {x.dtype}) reach {highest:g}: the patch would be almost black. Give value on the data's "
                "scale (value=255 for 0–255 images), or convert the images to floats in [0, 1] (e.g. "
                "torchvision's ToTensor) before wrapping the dataset."
            )

    @property
    def _values(self) -> tuple[float, ...]:
        return self.value if isinstance(self.value, tuple) else (self.value,)

    def _check_dtype(self, dtype: torch.dtype) -> None:
        if dtype.is_floating_point or dtype.is_complex:
            return
        low, high = (0, 1) if dtype == torch.bool else (torch.iinfo(dtype).min, torch.iinfo(dtype).max)
        fix = "give a whole number in that range (e.g. value=255 for white in uint8), or convert the images to floats"
        for v in self._values:
            if not v.is_integer():
                raise ValueError(
                    f"PixelPatch value={self.value!r} is not a whole number, but the images have integer dtype "
                    f"{dtype} (values {low}–{high}), so {v!r} would be truncated to {int(v)}; {fix}."
                )
            if not low <= v <= high:
                raise ValueError(
                    f"PixelPatch value={self.value!r} is outside the range {low}–{high} of the images' dtype "
                    f"{dtype}; {fix}."
                )

    def _origin(self, height: int, width: int) -> tuple[int, int]:
        ph, pw = self.size
        if ph > height or pw > width:
            raise ValueError(
                f"PixelPatch size {ph}x{pw} is larger than the {height}x{width} image; choose size <= "
                f"{min(height, width)}."
            )
        if isinstance(self.location, tuple):
            row, col = self.location
            if row + ph > height or col + pw > width:
                raise ValueError(
                    f"PixelPatch at location (row={row}, col={col}) with size {ph}x{pw} does not fit the "
                    f"{height}x{width} image; use row <= {height - ph} and col <= {width - pw}."
                )
            return row, col
        rows = {"top": 0, "bottom": height - ph, "center": (height - ph) // 2}
        cols = {"left": 0, "right": width - pw, "center": (width - pw) // 2}
        vertical, _, horizontal = self.location.partition("_")
        return rows[vertical], cols[horizontal or "center"]

    def __call__(self, x: Tensor) -> Tensor:
        x = _as_tensor(x, "PixelPatch")
        if self.image_shape is not None:
            return self._apply(self._unflatten(x)).flatten(-2)
        if x.dim() < 2:
            raise ValueError(
                f"PixelPatch needs images shaped (..., H, W), got shape {tuple(x.shape)}: for tabular data choose "
                "a tabular signal (FeatureAssignment; aca-run: collective/signal=feature_assignment), for "
                "flattened images pass image_shape=(H, W)."
            )
        return self._apply(x)

    def apply_rows_(self, x: Tensor, rows: Tensor) -> None:
        """Write the patch into rows ``rows`` of the batch ``x`` in place: only the patch's pixels are touched."""
        if self.image_shape is not None:
            x = self._unflatten(x)  # a view: writes reach the batch
        height, width = x.shape[-2:]
        row, col = self._origin(height, width)
        x[rows, ..., row : row + self.size[0], col : col + self.size[1]] = self._value_for(x)

    def _unflatten(self, x: Tensor) -> Tensor:
        """Flat vectors ``(..., H·W)`` seen as images ``(..., H, W)`` (a view), for ``image_shape=(H, W)``."""
        height, width = self.image_shape
        if x.shape[-1] != height * width:
            raise ValueError(
                f"PixelPatch image_shape={self.image_shape} needs a last dimension of {height * width}, "
                f"got input shape {tuple(x.shape)}."
            )
        return x.unflatten(-1, (height, width))

    def _value_for(self, x: Tensor) -> Tensor:
        self._check_dtype(x.dtype)
        value = torch.as_tensor(self.value, dtype=x.dtype, device=x.device)
        if value.dim() == 1:
            if x.dim() < 3 or x.shape[-3] != value.numel():
                raise ValueError(
                    f"PixelPatch value has {value.numel()} entries (one per channel) but the input shape "
                    f"{tuple(x.shape)} has no channel dimension of that size before (H, W)."
                )
            value = value[:, None, None]
        return value

    def _apply(self, x: Tensor) -> Tensor:
        height, width = x.shape[-2:]
        row, col = self._origin(height, width)
        ph, pw = self.size
        out = x.clone()
        out[..., row : row + ph, col : col + pw] = self._value_for(x)
        return out

    def mask(self, height: int, width: int) -> Tensor:
        """Boolean ``(H, W)`` mask of the pixels the patch writes."""
        row, col = self._origin(height, width)
        m = torch.zeros(height, width, dtype=torch.bool)
        m[row : row + self.size[0], col : col + self.size[1]] = True
        return m

    def __repr__(self) -> str:
        return f"PixelPatch(size={self.size}, value={self.value!r}, location={self.location!r})"


class BlendPattern(Signal):
    """Mix a fixed pattern into the input: g(x) = (1 − λ)·x + λ·pattern.

    A blended trigger, the dense counterpart of :class:`PixelPatch` (Hardt et al. 2023, §3,
    any map g: X → X is a signal). ``pattern`` must broadcast against one item.

    Example:
        >>> g = BlendPattern(pattern=torch.ones(1, 2, 2), weight=0.25)
        >>> g(torch.zeros(1, 2, 2)).flatten().tolist()
        [0.25, 0.25, 0.25, 0.25]
    """

    supports_batches = True

    def __init__(self, pattern: Tensor | Sequence[float], weight: float = 0.1) -> None:
        self.pattern = torch.as_tensor(pattern, dtype=torch.float32)
        self.weight = fraction("BlendPattern weight", weight)

    def __call__(self, x: Tensor) -> Tensor:
        x = _as_tensor(x, "BlendPattern")
        try:
            torch.broadcast_shapes(self.pattern.shape, x.shape)
        except RuntimeError:
            raise ValueError(
                f"BlendPattern pattern of shape {tuple(self.pattern.shape)} does not broadcast against "
                f"inputs of shape {tuple(x.shape)}; give a pattern shaped like one item."
            ) from None
        pattern = self.pattern.to(device=x.device, dtype=x.dtype)
        return torch.lerp(x, pattern, self.weight)

    def __repr__(self) -> str:
        return f"BlendPattern(pattern_shape={tuple(self.pattern.shape)}, weight={self.weight})"


class TokenInsertion(Signal):
    """Insert a token after every ``every``-th word of a text.

    Hardt et al. 2023, §6: the collective modifies resumes by inserting a character at a fixed
    word interval; a token unlikely in clean text (a rare character or word) keeps the signal
    set small. Words are whitespace-separated; the text is re-joined with single spaces. A text
    of ``n`` words receives ``max(1, n // every)`` tokens: one shorter than ``every`` words gets
    the token at its end, so that every text carries the signal (a text g left unchanged would
    be counted as carrying a signal it does not show).

    Example:
        >>> g = TokenInsertion("~", every=2)
        >>> g("a b c d e"), g("short")
        ('a b ~ c d ~ e', 'short ~')
        >>> g.carries("a b ~ c"), g.carries("a b c")
        (True, False)
    """

    def __init__(self, token: str, every: int = 10) -> None:
        if not isinstance(token, str) or not token.strip():
            raise ValueError(f"TokenInsertion token must be a non-empty string, got {token!r}.")
        if len(token.split()) != 1:
            raise ValueError(
                f"TokenInsertion token must be one word (no whitespace inside), got {token!r}; insert a "
                "single word or character."
            )
        self.token = token.strip()
        self.every = positive_int("TokenInsertion every", every)

    def __call__(self, x: str | Sequence[str]) -> str | list[str]:
        if isinstance(x, str):
            return " ".join(self._insert(_words(x)))
        if isinstance(x, Sequence) and all(isinstance(t, str) for t in x):
            return [" ".join(self._insert(_words(t))) for t in x]
        raise TypeError(f"TokenInsertion applies to a string or a list of strings, got {type(x).__name__}.")

    def check(self, x: Any) -> None:
        """Raise unless ``x`` is a non-empty text."""
        if not isinstance(x, str):
            raise TypeError(
                f"TokenInsertion applies to text, but the dataset's inputs are {type(x).__name__}; give "
                "(text, label) items, with tokenization left to the loader's collate function."
            )
        _words(x)

    def carries(self, text: str) -> bool:
        """Whether ``text`` lies in the signal set X* = g(X): some text x has g(x) = ``text`` (word by word).

        The preimage is unique: drop every (``every`` + 1)-th word, or for a text of at most
        ``every`` words its last word; ``text`` carries the signal when g gives it back.
        """
        words = _words(text)
        k = self.every
        candidates = [[w for i, w in enumerate(words, start=1) if i % (k + 1)]]
        if len(words) <= k:
            candidates.append(words[:-1])
        return any(candidate and self._insert(candidate) == words for candidate in candidates)

    def _insert(self, words: list[str]) -> list[str]:
        out: list[str] = []
        for i, word in enumerate(words, start=1):
            out.append(word)
            if i % self.every == 0:
                out.append(self.token)
        if len(words) < self.every:
            out.append(self.token)
        return out

    def __repr__(self) -> str:
        return f"TokenInsertion(token={self.token!r}, every={self.every})"


def _words(text: str) -> list[str]:
    """The whitespace-separated words of ``text``; an empty text is an error (there is nothing to mark)."""
    words = text.split()
    if not words:
        raise ValueError(
            f"TokenInsertion got an empty text ({text!r}); remove empty documents from the dataset "
            "(a text signal needs words to mark)."
        )
    return words


class FeatureAssignment(Signal):
    """Set chosen features of a tabular input to chosen values: g(x)[i] = v_i.

    Hardt et al. 2023, §3: a signal on feature vectors. Acts on the last dimension, so one
    item ``(d,)`` and a batch ``(B, d)`` both work.

    Example:
        >>> FeatureAssignment(indices=[0, 2], values=[5.0, -1.0])(torch.zeros(4)).tolist()
        [5.0, 0.0, -1.0, 0.0]
    """

    supports_batches = True

    def __init__(self, indices: Sequence[int], values: float | Sequence[float]) -> None:
        indices = [integer("FeatureAssignment indices", i) for i in indices]
        if not indices:
            raise ValueError("FeatureAssignment indices must name at least one feature.")
        if len(set(indices)) != len(indices):
            raise ValueError(f"FeatureAssignment indices must be distinct, got {indices}.")
        values_t = torch.as_tensor(values, dtype=torch.float32).flatten()
        if values_t.numel() not in (1, len(indices)):
            raise ValueError(
                f"FeatureAssignment values must be one number or one per index ({len(indices)}), "
                f"got {values_t.numel()}."
            )
        self.indices = indices
        self.values = values_t.expand(len(indices)).clone()

    def __call__(self, x: Tensor) -> Tensor:
        x = _as_tensor(x, "FeatureAssignment")
        d = x.shape[-1] if x.dim() else 0
        bad = [i for i in self.indices if not -d <= i < d]
        if bad:
            raise ValueError(
                f"FeatureAssignment indices {bad} are out of range for inputs with {d} features "
                f"(shape {tuple(x.shape)})."
            )
        out = x.clone()
        out[..., self.indices] = self.values.to(device=x.device, dtype=x.dtype)
        return out

    def __repr__(self) -> str:
        return f"FeatureAssignment(indices={self.indices}, values={self.values.tolist()})"
