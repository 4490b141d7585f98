import numpy as np
import pytest
import torch
from PIL import Image

from lightning_aca import CollectiveDataModule, PixelPatch, SignalPlanting, WaterbirdsDataModule


@pytest.fixture
def tiny_waterbirds(tmp_path):
    """A 12-image folder in the released Waterbirds layout."""
    rows = ["img_id,img_filename,y,split,place,place_filename"]
    rng = np.random.default_rng(0)
    for i in range(12):
        name = f"birds/{i:03d}.jpg"
        (tmp_path / "birds").mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(tmp_path / name)
        rows.append(f"{i},{name},{i % 2},{i % 3},{(i // 2) % 2},x")
    (tmp_path / "metadata.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_reads_splits_groups_and_images(tiny_waterbirds):
    dm = WaterbirdsDataModule(tiny_waterbirds, image_size=16, batch_size=2)
    dm.setup()
    assert (len(dm.train_dataset), len(dm.val_dataset), len(dm.test_dataset)) == (4, 4, 4)
    x, y, group = dm.train_dataset[1]  # image 3: y = 1, place = 1, split 0
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32 and x.min() >= 0 and x.max() <= 1
    assert (y.item(), group.item()) == (1, 3)
    collective = CollectiveDataModule(SignalPlanting(PixelPatch(4), target_class=0), 0.5, datamodule=dm)
    collective.setup("fit")
    assert len(collective.train_dataset.members) == 2 and len(collective.signal_test_dataset) == 2


def test_missing_data_says_where_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="download the Waterbirds dataset"):
        WaterbirdsDataModule(tmp_path).setup()
