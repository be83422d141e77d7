"""The one train pipeline template, instantiated per architecture (Kedro namespaces).

It lives outside ``pipelines/`` because ``find_pipelines`` treats every folder there as a
pipeline; ``pipeline_registry`` registers ``train_<arch>`` for each architecture.
"""

from reid_pipeline.train_template.pipeline import ARCHITECTURES, create_train_pipeline

__all__ = ["ARCHITECTURES", "create_train_pipeline"]
