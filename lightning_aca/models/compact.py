"""A compact copy of a Hugging Face model: float16 safetensors weights plus config and tokenizer files.

MiniLM-L6's float32 weights take 91 MB; the float16 copy takes 45 MB, small enough to travel
with a run to a machine without network. :func:`~lightning_aca.models.text.load_sequence_classifier`
loads such a copy back into float32 weights for training.

With ``texts``, the copy keeps only the vocabulary those texts use: the word-embedding rows of
every other token are dropped and the tokenizer's ids renumbered in their order. WordPiece picks
the longest piece in the vocabulary, and every piece it picked in the texts stays, so on those
texts the copy tokenizes to the same pieces and computes the same outputs (MiniLM-L6 on the two
review classes: 14,493 of 30,522 tokens, 32 MiB instead of 44).

Command line: ``python -m lightning_aca.models.compact DEST [--source PATH_OR_NAME]
[--vocabulary-of reviews [--keep TOKEN ...]]`` (default source: the shipped MiniLM-L6).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch


def write_compact_copy(
    destination: str | Path, source: str | Path | None = None, texts: Iterable[str] | None = None
) -> Path:
    """Write ``source``'s encoder weights in float16 (safetensors) and its config and tokenizer to ``destination``.

    Args:
        destination: directory to write (created; existing files of the same names are replaced).
        source: a Hugging Face model directory or Hub name; ``None`` for the shipped MiniLM-L6.
        texts: keep only the tokens these texts use (and the special tokens); ``None`` keeps the
            whole vocabulary. Texts outside them may tokenize differently with the copy.

    Returns:
        The destination directory, loadable with ``model_name_or_path=`` anywhere a model path is taken.
    """
    from transformers import AutoModel, AutoTokenizer

    from lightning_aca.assets import default_text_model

    source = default_text_model() if source is None else source
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    model = AutoModel.from_pretrained(str(source), dtype=torch.float16)
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    kept = None
    if texts is not None:
        kept = sorted(set(tokenizer.all_special_ids).union(*tokenizer(list(texts))["input_ids"]))
        rows = model.get_input_embeddings().weight.detach()[kept]
        model.set_input_embeddings(torch.nn.Embedding.from_pretrained(rows, freeze=False, padding_idx=None))
        model.config.vocab_size = len(kept)
        if model.config.pad_token_id is not None:
            model.config.pad_token_id = kept.index(model.config.pad_token_id)
    model.save_pretrained(destination, safe_serialization=True)
    tokenizer.save_pretrained(destination)
    if kept is not None:
        _renumber_tokenizer(destination / "tokenizer.json", {old: new for new, old in enumerate(kept)})
    return destination


def _renumber_tokenizer(path: Path, new_id: dict[int, int]) -> None:
    """Keep the tokens of ``new_id``'s keys in a saved fast tokenizer, renumbered to its values."""
    if not path.is_file():
        raise ValueError(f"texts= needs a fast tokenizer (tokenizer.json); {path.parent} has none.")
    spec = json.loads(path.read_text())
    vocab = spec["model"].get("vocab")
    if not isinstance(vocab, dict):
        raise ValueError(f"texts= renumbers a tokenizer with a vocabulary table (WordPiece); {path} has none.")
    spec["model"]["vocab"] = {token: new_id[i] for token, i in vocab.items() if i in new_id}
    spec["added_tokens"] = [t | {"id": new_id[t["id"]]} for t in spec["added_tokens"] if t["id"] in new_id]
    for special in (spec.get("post_processor") or {}).get("special_tokens", {}).values():
        special["ids"] = [new_id[i] for i in special["ids"]]
    path.write_text(json.dumps(spec, ensure_ascii=False))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lightning_aca.models.compact DEST [--source PATH_OR_NAME] [--vocabulary-of reviews [--keep ...]]``."""
    parser = argparse.ArgumentParser(prog="python -m lightning_aca.models.compact", description=__doc__.splitlines()[0])
    parser.add_argument("destination", help="directory to write the float16 copy into")
    parser.add_argument("--source", default=None, help="model directory or Hub name (default: the shipped MiniLM-L6)")
    parser.add_argument(
        "--vocabulary-of", choices=["reviews"], default=None, help="keep only the tokens of these texts (data=reviews)"
    )
    parser.add_argument("--keep", nargs="*", default=["~"], help="texts whose tokens are kept too (default: ~)")
    args = parser.parse_args(argv)
    texts = None
    if args.vocabulary_of == "reviews":
        from lightning_aca.data.reviews import load_reviews

        texts = [*load_reviews().texts, *args.keep]
    out = write_compact_copy(args.destination, args.source, texts)
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    print(f"compact copy: {out} ({size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
