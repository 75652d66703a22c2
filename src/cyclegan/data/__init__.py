"""Image loading, preprocessing, datasets and the built-in synthetic labels <-> photo set."""

from cyclegan.data.datasets import (
    SingleFolderDataset,
    SkippedImageWarning,
    UnalignedDataset,
    collate_samples,
)
from cyclegan.data.images import (
    IMAGE_EXTENSIONS,
    MAX_IMAGE_PIXELS,
    list_images,
    load_image,
    open_image_header,
    save_image_atomic,
)
from cyclegan.data.synth import (
    CLASS_NAMES,
    PALETTE,
    generate_synthetic_dataset,
    labels_to_rgb,
    render_scene,
    rgb_to_labels,
    scene_rng,
)
from cyclegan.data.transforms import PREPROCESS_MODES, check_preprocess_options, preprocess
from cyclegan.imageconv import image_to_tensor, tensor_to_image

__all__ = [
    "CLASS_NAMES",
    "IMAGE_EXTENSIONS",
    "MAX_IMAGE_PIXELS",
    "PALETTE",
    "PREPROCESS_MODES",
    "SingleFolderDataset",
    "SkippedImageWarning",
    "UnalignedDataset",
    "check_preprocess_options",
    "collate_samples",
    "generate_synthetic_dataset",
    "image_to_tensor",
    "labels_to_rgb",
    "list_images",
    "load_image",
    "open_image_header",
    "preprocess",
    "render_scene",
    "rgb_to_labels",
    "save_image_atomic",
    "scene_rng",
    "tensor_to_image",
]
