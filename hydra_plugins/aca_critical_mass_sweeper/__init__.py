"""Hydra sweeper ``hydra/sweeper=critical_mass``: runs placed where they decide the critical mass α*.

Every swept setting other than ``collective.alpha`` and ``seed`` is expanded as Hydra's basic
sweeper expands it; for each setting, rounds of runs follow
:class:`lightning_aca.analysis.alpha_search.AlphaSearch` until α* is located to the tolerance,
is out of the range, or the run budget is spent. Each round is one launcher batch, so any
launcher runs it (``hydra/launcher=stacked`` trains a round as stacked models), and the runs are
ordinary ``aca-run`` runs with their records: a killed search re-run into the same
``hydra.sweep.dir`` resumes from them.
"""
