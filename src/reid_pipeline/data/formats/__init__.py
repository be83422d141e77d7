"""One module per real dataset layout; each exposes ``load(root, **options) -> Splits``.

Use them through :func:`reid_pipeline.data.loaders.load_dataset`, which checks options, relabels
training pids and verifies images. Every module starts with the dataset's reference, its
published statistics and its file-name pattern (all summarised in docs/datasets.md);
``manifest`` and ``folders`` read your own crops (docs/custom_data.md).
"""
