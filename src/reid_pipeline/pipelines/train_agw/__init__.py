"""``train_agw``: the shared train template under the ``agw`` namespace
(see ``reid_pipeline.train_template``; parameters in conf/base/parameters_train_agw.yml)."""

from kedro.pipeline import Pipeline

from reid_pipeline.train_template import create_train_pipeline


def create_pipeline(**kwargs: object) -> Pipeline:
    return create_train_pipeline("agw")
