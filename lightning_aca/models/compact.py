"""A compact copy of a Hugging Face model: float16 safetensors weights plus config and tokenizer files.

MiniLM-L6's float32 weights take 91 MB; the float16 copy takes 45 MB, small enough to travel
with a run to a machine without network. :func:`~lightning_aca.models.text.load_sequence_classifier`
loads such a copy back into float32 weights for training.

Command line: ``python -m lightning_aca.models.compact DEST [--source PATH_OR_NAME]`` (default
source: the shipped MiniLM-L6).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch


def write_compact_copy(destination: str | Path, source: str | Path | None = None) -> Path:
    """Write ``source``'s encoder weights in float16 (safetensors) and its config and tokenizer to ``destination``.

    Args:
        destination: directory to write (created; existing files of the same names are replaced).
        source: a Hugging Face model directory or Hub name; ``None`` for the shipped MiniLM-L6.

    Returns:
        The destination directory, loadable with ``model_name_or_path=`` anywhere a model path is taken.
    """
    from transformers import AutoModel, AutoTokenizer

    from lightning_aca.assets import default_text_model

    source = default_text_model() if source is None else source
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    model = AutoModel.from_pretrained(str(source), dtype=torch.float16)
    model.save_pretrained(destination, safe_serialization=True)
    AutoTokenizer.from_pretrained(str(source)).save_pretrained(destination)
    return destination


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lightning_aca.models.compact DEST [--source PATH_OR_NAME]``."""
    parser = argparse.ArgumentParser(prog="python -m lightning_aca.models.compact", description=__doc__.splitlines()[0])
    parser.add_argument("destination", help="directory to write the float16 copy into")
    parser.add_argument("--source", default=None, help="model directory or Hub name (default: the shipped MiniLM-L6)")
    args = parser.parse_args(argv)
    out = write_compact_copy(args.destination, args.source)
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    print(f"compact copy: {out} ({size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
