from lightning_aca.stacked import stackable_reason


def test_text_runs_are_not_stacked_and_the_reason_says_so(compose_config):
    reason = stackable_reason(compose_config("experiment=text_reviews"))
    assert reason.startswith("model TextClassifier (a Hugging Face transformer over tokenized text) is not stacked")
    assert "hydra/launcher=basic or local_parallel" in reason
