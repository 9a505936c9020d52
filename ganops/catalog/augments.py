"""The augmentations of what D sees, by name (the schema's allowed values; the transforms live in
``ganops.models.augment``, which loads kornia only when a family augments)."""

AUGMENTS = {
    "none": "D sees the images as they are",
    "diffaugment": "DiffAugment (Zhao et al. 2020): the train.diffaugment transforms on every image D reads",
    "ada": "ADA (Karras et al. 2020): geometric and colour transforms with a probability steered by D's "
           "overfitting signal r_t toward train.ada_target",
}
DIFFAUGMENT_OPS = ("color", "translation", "cutout")


def check_policy(policy: str) -> str:
    """A DiffAugment policy: a comma-separated, non-empty subset of ``DIFFAUGMENT_OPS``."""
    names = [s.strip() for s in policy.split(",") if s.strip()]
    bad = [n for n in names if n not in DIFFAUGMENT_OPS]
    if bad or not names or len(set(names)) < len(names):
        # worded to follow the schema's "value … is not allowed; expected"
        raise ValueError(f"a comma-separated subset of {', '.join(DIFFAUGMENT_OPS)}, each at most once")
    return ",".join(names)
