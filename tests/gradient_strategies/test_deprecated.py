import importlib

import pytest
import torch

from lightning_aca.gradient_strategies import (
    GradientControl,
    GradientStrategy,
    LogitShift,
    ThetaStar,
    as_theta_star,
    neutralization_alpha_star,
)

SHIFT = LogitShift(target_class=0, shift=1.0)


def test_old_package_warns_and_keeps_the_old_names():
    import lightning_aca.online

    with pytest.warns(FutureWarning, match="lightning_aca.gradient_strategies"):
        old = importlib.reload(lightning_aca.online)
    assert old.GradientControl is GradientControl and old.Target is ThetaStar
    assert issubclass(old.OnlineStrategy, GradientStrategy)
    assert importlib.import_module("lightning_aca.online.targets").ThetaStar is ThetaStar
    assert importlib.import_module("lightning_aca.online.theory").neutralization_alpha_star is neutralization_alpha_star
    with pytest.warns(FutureWarning, match="as_theta_star"):
        assert old.as_target(SHIFT) is as_theta_star(SHIFT)
    with pytest.warns(FutureWarning, match="neutralization_alpha_star"):
        assert old.neutralization_critical_alpha(torch.zeros(2), torch.eye(2)) == 0.0


def test_old_strategy_name_and_keywords_warn_and_work():
    with pytest.warns(FutureWarning, match="GradientStrategy"):
        import lightning_aca.online

        strategy = lightning_aca.online.OnlineStrategy(target=2)
    assert isinstance(strategy, GradientStrategy) and strategy.target_class == 2
    with pytest.warns(FutureWarning, match="target_class"):
        assert GradientStrategy(target=1).target_class == 1
    with pytest.warns(FutureWarning, match="target_class"):
        assert GradientStrategy(1).target == 1
    with pytest.raises(ValueError, match="both"):
        GradientStrategy(1, target=1)


def test_old_callback_keywords_warn_and_work():
    with pytest.warns(FutureWarning, match="theta_star"):
        control = GradientControl(target=SHIFT, feature_bounds=(-1, 1), rate=0.5)
    assert control.theta_star is SHIFT
    with pytest.warns(FutureWarning, match="label_key"):
        control = GradientControl(SHIFT, feature_bounds=(-1, 1), target_key="label")
    assert control.label_key == "label" and GradientControl(SHIFT, feature_bounds=(-1, 1)).label_key == 1
    with pytest.warns(FutureWarning, match="theta_star"):
        assert control.target is SHIFT
    with pytest.warns(FutureWarning, match="label_key"):
        assert control.target_key == "label"
