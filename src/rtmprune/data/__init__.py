"""Keypoint data: COCO / AI Challenger top-down datasets, the synthetic set, RTMPose transforms, loaders."""

from rtmprune.data.aic import AicDataset
from rtmprune.data.coco import CocoDataset
from rtmprune.data.combined import CombinedDataset
from rtmprune.data.loader import build_dataloader, build_dataset, collate, set_epoch, switch_pipeline
from rtmprune.data.synthetic import generate_synthetic_dataset
from rtmprune.data.transforms import build_pipeline

__all__ = [
    "AicDataset",
    "CocoDataset",
    "CombinedDataset",
    "build_dataloader",
    "build_dataset",
    "build_pipeline",
    "collate",
    "generate_synthetic_dataset",
    "set_epoch",
    "switch_pipeline",
]
