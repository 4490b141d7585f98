"""Which ``aca-run`` configurations the stacked engine can train, and which of them train together.

A configuration is stackable when its model follows the network protocol of
:mod:`lightning_aca.stacked.network` (a plain network as ``self.net``, cross-entropy, SGD/Adam/AdamW
with a schedule), its data are in-memory tensors and its firm is ERM, DP-SGD or group DRO. A
group of configurations is stackable when they are identical except for the keys in
:data:`STACKABLE_KEYS` (α, seeds, DP-SGD's σ / target ε / C, group DRO's η, learning rate), so that K copies of
one network on one data set differ only in per-model numbers (Hardt et al. 2023, §2: runs of a
sweep differ in α and seed; Solanki et al. 2025: in ε and C as well). With several collectives
(Karan et al. 2025) each one's α, ``collective.collectives.<name>.alpha``, is a per-model number too.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lightning_aca.runs.records import first_difference

STACKABLE_KEYS: tuple[str, ...] = (
    "collective.alpha",
    "collective.collectives.*.alpha",
    "seed",
    "collective.seed",
    "firm.callbacks.dpsgd.noise_multiplier",
    "firm.callbacks.dpsgd.target_epsilon",
    "firm.callbacks.dpsgd.max_grad_norm",
    "firm.callbacks.gdro.step_size",
    "model.lr",
    "model.optimizer.lr",
)

#: keys that never change what is trained: where the record goes, how verbose, Hydra's own node.
_NOT_COMPARED = ("output_dir", "quiet", "hydra")

_TEXT_CLASSIFIERS = ("lightning_aca.TextClassifier", "lightning_aca.models.TextClassifier")
_DPSGD = ("lightning_aca.DPSGD", "lightning_aca.firm.dp.DPSGD")
_GDRO = ("lightning_aca.GroupDRO", "lightning_aca.firm.gdro.GroupDRO")
#: Trainer settings the stacked loop does not reproduce, with the value that is reproduced.
_TRAINER_DEFAULTS = {
    "accumulate_grad_batches": 1,
    "gradient_clip_val": None,
    "max_steps": -1,
    "limit_train_batches": None,
    "precision": None,
    "strategy": None,
}


def plain(cfg: DictConfig) -> dict[str, Any]:
    """The resolved configuration as a dict, without Hydra's node (what a run record stores).

    Interpolations into the ``hydra`` node (a launcher's per-job values) resolve before the node
    is dropped; a value that cannot be resolved here (a ``${hydra:...}`` outside a Hydra job) is
    kept as its interpolation string.
    """
    data = _resolved(OmegaConf.create(OmegaConf.to_container(cfg, resolve=False)))
    data.pop("hydra", None)
    return data


def _resolved(node: Any) -> Any:
    if isinstance(node, DictConfig):
        return {key: _resolved_item(node, key) for key in node}
    if OmegaConf.is_list(node):
        return [_resolved_item(node, i) for i in range(len(node))]
    return node


def _resolved_item(node: Any, key: Any) -> Any:
    try:
        value = node[key]
    except Exception:  # an unresolvable interpolation: keep its text
        return node._get_node(key)._value()
    return _resolved(value) if OmegaConf.is_config(value) else value


def _comparable(cfg: DictConfig) -> dict[str, Any]:
    """The configuration as written (interpolations unresolved), without keys that cannot change results."""
    data = OmegaConf.to_container(cfg, resolve=False)
    for key in _NOT_COMPARED:
        data.pop(key, None)
    for key in expand_keys(STACKABLE_KEYS, data):
        _set(data, key, None)
    return data


def expand_keys(keys: tuple[str, ...] | list[str], data: dict[str, Any]) -> list[str]:
    """``keys`` with each ``*`` part replaced by every key found at that place in the nested dict ``data``.

    Example:
        >>> expand_keys(["seed", "collective.collectives.*.alpha"], {"collective": {"collectives": {"a": {}, "b": {}}}})
        ['seed', 'collective.collectives.a.alpha', 'collective.collectives.b.alpha']
    """
    out: list[str] = []
    for key in keys:
        prefixes = [""]
        for part in key.split("."):
            if part != "*":
                prefixes = [f"{prefix}{part}." for prefix in prefixes]
                continue
            found = []
            for prefix in prefixes:
                node: Any = data
                for step in prefix.rstrip(".").split(".") if prefix else []:
                    node = node.get(step) if isinstance(node, dict) else None
                found += [f"{prefix}{name}." for name in node] if isinstance(node, dict) else []
            prefixes = found
        out += [prefix.rstrip(".") for prefix in prefixes]
    return out


def _trainer_reason(trainer: Any) -> str | None:
    devices = trainer.get("devices", 1)
    if devices not in (1, "1", None, "auto") and not (isinstance(devices, list) and len(devices) == 1):
        return f"trainer.devices={devices!r}: the stacked engine trains on one device"
    for key, default in _TRAINER_DEFAULTS.items():
        value = trainer.get(key, default)
        if key == "precision" and value in (None, 32, "32", "32-true"):
            continue
        if key == "strategy" and value in (None, "auto", "single_device"):
            continue
        if key == "limit_train_batches" and value in (None, 1, 1.0):
            continue
        if value != default:
            return f"trainer.{key}={value!r} is not reproduced by the stacked training loop"
    return None


def _firm_reason(firm: Any) -> str | None:
    callbacks = dict(firm.get("callbacks") or {})
    targets = [callback.get("_target_") if hasattr(callback, "get") else None for callback in callbacks.values()]
    for (name, callback), target in zip(callbacks.items(), targets, strict=True):
        if target not in _DPSGD + _GDRO:
            return f"firm callback {name!r} ({target}) has no stacked form (ERM, DPSGD and GroupDRO stack)"
        if target in _GDRO:
            continue
        if not callback.get("poisson_sampling", True):
            return "DPSGD(poisson_sampling=false) has no stacked form (stacked DP-SGD samples by Poisson)"
        if callback.get("secure_mode", False):
            return "DPSGD(secure_mode=true) needs Opacus's secure noise generator; stacked noise is torch.randn"
    if len(callbacks) > 1:
        return f"firm callbacks {sorted(callbacks)} together have no stacked form (one of DPSGD or GroupDRO stacks)"
    return None


def stackable_reason(cfg: DictConfig) -> str | None:
    """None if this fully composed aca-run config can be trained by the stacked engine, else a one-line reason."""
    try:
        model = cfg.model
        if model.get("_target_") in _TEXT_CLASSIFIERS:
            return (
                "model TextClassifier (a Hugging Face transformer over tokenized text) is not stacked: the engine "
                "stacks plain networks over in-memory tensors; sweep text runs with "
                "hydra/launcher=basic or local_parallel"
            )
        if cfg.collective.get("callbacks"):
            return "online collectives (collective.callbacks) act on the model each step and are not stacked"
        from lightning_aca.experiment import cache_key, config_collectives

        config_collectives(cfg)  # a malformed collective.collectives goes to the standard path's error
        reason = _firm_reason(cfg.firm) or _trainer_reason(cfg.trainer)
        if reason:
            return reason
        private = any(c.get("_target_") in _DPSGD for c in (cfg.firm.get("callbacks") or {}).values())
        reason, input_shape = _data_facts(cache_key(cfg.data))
        return reason or _model_reason(cache_key(cfg.model), private, input_shape)
    except Exception as err:  # a config the engine cannot even read goes to the standard path
        return f"not stackable: {type(err).__name__}: {err}".splitlines()[0]


@functools.lru_cache(maxsize=32)
def _data_facts(data_key: str) -> tuple[str | None, tuple[int, ...]]:
    """Why the data cannot be stacked (``None`` if they can), and the shape of one input."""
    from lightning_aca.stacked.data import load_tensors

    try:
        data = load_tensors(OmegaConf.create(json.loads(data_key)))
    except (TypeError, ValueError) as err:
        return str(err).splitlines()[0], ()
    return None, tuple(data.x_train.shape[1:])


@functools.lru_cache(maxsize=32)
def _model_reason(model_key: str, private: bool, input_shape: tuple[int, ...]) -> str | None:
    from hydra.utils import instantiate

    from lightning_aca.stacked.network import network_reason

    return network_reason(instantiate(OmegaConf.create(json.loads(model_key))), input_shape, private)


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        data = data.get(key)
        if not isinstance(data, dict):
            return
    if leaf in data:
        data[leaf] = value


def check_group(cfgs: list[DictConfig]) -> list[dict[str, Any]]:
    """The configs' resolved dicts; ``ValueError`` naming the key if two differ outside :data:`STACKABLE_KEYS`.

    Configurations are compared as written, so values interpolated from ``output_dir`` (a logger's
    ``save_dir``) or from a stackable key (``collective.seed: ${seed}``) do not split a group.
    """
    reference = _comparable(cfgs[0])
    for i, cfg in enumerate(cfgs[1:], start=1):
        found = first_difference(reference, _comparable(cfg))
        if found is not None:
            raise ValueError(
                f"configs 0 and {i} differ in {found[0]!r}, which is not stackable (stackable: {', '.join(STACKABLE_KEYS)}); "
                "train them in separate groups."
            )
    return [plain(cfg) for cfg in cfgs]
