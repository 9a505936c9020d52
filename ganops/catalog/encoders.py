"""The encoders by name and what each is: the declaration the schema (``embed.encoder``) and the
embeddings stage share, read without loading torch. Each names the function that yields it
(``ganops.embed.api``), imported on first use."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EncoderSpec:
    name: str
    about: str
    impl: str                    # "module:function" (images, labels, p, device, checkpoint, log) -> (model, metrics)
    trained: bool = False        # trained in the pipeline on the dataset (its weights go into encoder.pt)
    saved: bool = True           # writes encoder.pt (pixels has nothing to save)


ENCODER_SPECS: dict[str, EncoderSpec] = {s.name: s for s in (
    EncoderSpec("simclr", "SimCLR (Chen et al. 2020), trained here", "ganops.embed.api:_simclr", trained=True),
    EncoderSpec("classifier", "a supervised classifier's penultimate layer, trained here",
                "ganops.embed.api:_classifier", trained=True),
    EncoderSpec("resnet50", "torchvision's ImageNet ResNet-50 (weights file needed)", "ganops.embed.api:_pretrained"),
    EncoderSpec("swav", "SwAV ResNet-50 (Caron et al. 2020; IC-GAN's choice; weights file needed)",
                "ganops.embed.api:_pretrained"),
    EncoderSpec("pixels", "raw pixels minus the mean image (a baseline)", "ganops.embed.api:_pixels", saved=False),
)}
ENCODERS = tuple(ENCODER_SPECS)
