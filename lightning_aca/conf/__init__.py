"""``aca-run``'s Hydra configs; importing the package registers the resolvers they use (``aca_data``)."""

import lightning_aca.experiment  # noqa: F401
