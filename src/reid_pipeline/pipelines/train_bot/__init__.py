"""``train_bot``: the shared train template under the ``bot`` namespace
(see ``reid_pipeline.train_template``; parameters in conf/base/parameters_train_bot.yml)."""

from kedro.pipeline import Pipeline

from reid_pipeline.train_template import create_train_pipeline


def create_pipeline(**kwargs: object) -> Pipeline:
    return create_train_pipeline("bot")
