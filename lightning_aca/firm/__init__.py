"""The firm's learning algorithms as Lightning callbacks: DP-SGD (Opacus) and Group DRO."""
