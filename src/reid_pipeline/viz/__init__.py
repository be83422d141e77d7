"""Visualisation: CMC curves, rank lists, training curves, embedding maps (matplotlib, Agg)."""
