"""torchmetrics Metrics for collective action (functional twins in ``.functional``) and the callback that logs them."""

from lightning_aca.metrics.callback import CollectiveMetrics
from lightning_aca.metrics.groups import GroupAccuracy, WorstGroupAccuracy
from lightning_aca.metrics.success import CollectiveSuccess, SignalErasureSuccess

__all__ = ["CollectiveMetrics", "CollectiveSuccess", "GroupAccuracy", "SignalErasureSuccess", "WorstGroupAccuracy"]
