"""Data modules: the collective wrapper and built-in sources (digits embedded, torchvision optional)."""
