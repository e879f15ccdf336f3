"""Datasets: the synthetic offline world and the nine real multi-label datasets."""

from sspa_core.data.base import MultiLabelDataset, resolve_inside
from sspa_core.data.transforms import build_transform

__all__ = ["MultiLabelDataset", "build_transform", "resolve_inside"]
