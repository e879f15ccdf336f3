"""Image transforms: CLIP's normalisation at a chosen square input size."""

from __future__ import annotations

from torchvision import transforms as T

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def build_transform(image_size: int = 224, train: bool = False) -> T.Compose:
    """Resize to ``image_size``² (multi-label images keep every region: no centre crop),
    with a horizontal flip when ``train``; then CLIP mean/std normalisation."""
    steps = [T.Resize((image_size, image_size), interpolation=T.InterpolationMode.BICUBIC)]
    if train:
        steps.append(T.RandomHorizontalFlip())
    steps += [T.ToTensor(), T.Normalize(CLIP_MEAN, CLIP_STD)]
    return T.Compose(steps)
