"""The firm's learning algorithms as Lightning callbacks: DP-SGD (Opacus) and Group DRO."""

from lightning_aca.firm.dp import DPSGD
from lightning_aca.firm.gdro import GroupDRO

__all__ = ["DPSGD", "GroupDRO"]
