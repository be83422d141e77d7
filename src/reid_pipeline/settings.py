"""Kedro project settings."""

from kedro.config import OmegaConfigLoader

from reid_pipeline.hooks import ProgressHooks, RunHooks

HOOKS = (ProgressHooks(), RunHooks())

# kedro-viz writes .viz/ on every run through its hooks; `kedro viz` itself still works.
DISABLE_HOOKS_FOR_PLUGINS = ("kedro-viz",)

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # an environment (e.g. conf/market1501) overrides single keys, not whole top-level blocks
    "merge_strategy": {"parameters": "soft"},
}
