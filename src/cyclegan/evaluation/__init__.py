"""Measuring translation quality: segmentation scores (the paper's Tables 1-2), the FCN-score
segmenter, FID / KID, PSNR / SSIM and the `evaluate` orchestration behind `cyclegan evaluate`.

Modules: `segmentation` (confusion matrix, accuracies, IoU, palettes), `segmenter` (the small
segmentation network, trained on real photos and cached), `fid` (Inception features, FID,
KID), `image_metrics` (PSNR, SSIM), `evaluate` (everything for one checkpoint and dataset).
"""
from cyclegan.evaluation.evaluate import evaluate, format_report, write_report

__all__ = ["evaluate", "format_report", "write_report"]
