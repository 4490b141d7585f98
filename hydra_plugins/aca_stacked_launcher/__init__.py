"""Hydra launcher ``hydra/launcher=stacked``: a sweep's runs of one architecture trained as stacked models.

Jobs of a multirun that differ only in :data:`lightning_aca.stacked.STACKABLE_KEYS` (α, seeds,
DP noise, ε or clipping norm, learning rate) are trained together by
:func:`lightning_aca.stacked.run_stacked`; every other job runs as ``aca-run`` runs it. Each job
keeps the basic launcher's output directory, ``.hydra/`` files and ``record.json``.
"""
