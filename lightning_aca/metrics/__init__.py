"""torchmetrics Metrics for collective action and the callback that logs them."""
