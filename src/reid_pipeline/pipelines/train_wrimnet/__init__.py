"""``train_wrimnet``: the shared train template under the ``wrimnet`` namespace
(see ``reid_pipeline.train_template``; parameters in conf/base/parameters_train_wrimnet.yml)."""

from kedro.pipeline import Pipeline

from reid_pipeline.train_template import create_train_pipeline


def create_pipeline(**kwargs: object) -> Pipeline:
    return create_train_pipeline("wrimnet")
