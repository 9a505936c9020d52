"""``ganops translate --in DIR --out DIR``: a user's own source-domain images through the trained
domain-transfer model, one output image per input under the same relative name (and format), so
inputs and translations can be matched.

Every file is decoded before anything is written: an unreadable one stops the command with its name
(``--skip-corrupt`` translates the rest and lists them), and an existing output is never overwritten
without ``--force``. Each output is written atomically. Images are prepared as the dataset stage
prepares them (centre square, resized to the model's side, its channel count), so translations come out
at the model's resolution.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ganops.core import artifacts as A
from ganops.core.errors import UserError
from ganops.core.params import Params
from ganops.models.transfer_model import TranslatorModel

_LISTED = 20


class TranslateError(UserError, ValueError):
    """A translation request does not fit the folders or the trained model: the message says what to change."""


@dataclass
class TranslateReport:
    out: Path
    written: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    model: str = ""

    def summary(self) -> str:
        lines = [f"translate: {len(self.written)} images written to {self.out} ({self.model})"]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} unreadable files:")
            lines += [f"  {name} ({why})" for name, why in self.skipped[:_LISTED]]
            if len(self.skipped) > _LISTED:
                lines.append(f"  … and {len(self.skipped) - _LISTED} more")
        return "\n".join(lines)


def _model(p: Params, root: Path, model: str | None) -> tuple[TranslatorModel, str]:
    from ganops.models import load_model
    from ganops.stages.common import check_meta
    from ganops.tracking import registry

    if model is not None:
        weights, mv = registry.load_weights(p, root, model, kind="transfer")
        return load_model(weights, kind="transfer"), f"{registry.registered_model_name(p, 'transfer')} v{mv.version}"
    tdir = A.translator_dir(root, p)
    if not (tdir / "model.pt").exists():
        raise TranslateError(f"no {p.transfer.family} translator for these parameters ({tdir} is empty): train it with "
                          f"`ganops stage transfer --set transfer.family={p.transfer.family}` (or `ganops run "
                          "--transfer`) and the same --set options")
    try:
        check_meta(tdir, A.read_meta(tdir, produced_by="transfer"), p, "transfer", root=root)
    except A.ArtifactError as exc:
        name = registry.registered_model_name(p, "transfer")
        raise TranslateError(f"{exc} Then translate again; or translate with a registered version as it is: "
                          f"--model champion or --model N, a version of {name}.") from None
    return load_model(tdir / "model.pt", kind="transfer"), str(tdir)


def _encode(image: np.ndarray, suffix: str) -> bytes:
    from PIL import Image

    fmt = Image.registered_extensions().get(suffix.lower())
    if fmt is None:
        raise TranslateError(f"cannot write images with the extension {suffix!r}")
    arr = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format=fmt)
    return buf.getvalue()


def translate_folder(p: Params, root: Path, inp: Path, out: Path, *, force: bool = False, skip_corrupt: bool = False,
                     reverse: bool = False, model: str | None = None, batch_size: int = 256) -> TranslateReport:
    from ganops.data.folder import _scan, decode_image

    inp, out = Path(inp), Path(out)
    if not inp.is_dir():
        raise TranslateError(f"--in {inp}: not a directory; give the folder that holds your images")
    if out.resolve() == inp.resolve() or inp.resolve() in out.resolve().parents:
        raise TranslateError(f"--out {out} is inside --in {inp}: the translations would replace or join the inputs; "
                          "choose a folder outside it")
    if out.resolve() in inp.resolve().parents:
        raise TranslateError(f"--in {inp} is inside --out {out}: the translations would be written among the inputs' "
                          "folders; choose an --out that neither holds nor is inside --in")
    files, _ = _scan(inp)
    if not files:
        from ganops.data.folder import EXTENSIONS

        raise TranslateError(f"--in {inp}: no image files (extensions: {', '.join(sorted(EXTENSIONS))})")
    trained, name = _model(p, root, model)      # what the model can do decides first: --force would not help
    if reverse and not trained.reversible:
        raise TranslateError(f"--reverse: {trained.describe()} translates one way only (source → target); "
                             "transfer.family=cyclegan learns both directions")
    side, channels = trained.frame(reverse)
    rel = [f.relative_to(inp) for f in files]
    existing = [str(r) for r in rel if (out / r).exists()]
    if existing and not force:
        more = f" and {len(existing) - _LISTED} more" if len(existing) > _LISTED else ""
        raise TranslateError(f"--out {out}: {len(existing)} translations exist already ({', '.join(existing[:_LISTED])}"
                             f"{more}); pass --force to overwrite them, or choose another folder")
    report = TranslateReport(out, model=name)
    images, kept = [], []
    for path, r in zip(files, rel):
        try:
            images.append(decode_image(path, side, channels))
            kept.append(r)
        except Exception as e:  # PIL raises many types for bad files (OSError, SyntaxError, ValueError...)
            report.skipped.append((str(r), f"{type(e).__name__}: {e}"))
    if report.skipped and not skip_corrupt:
        listed = "\n".join(f"  {n} ({why})" for n, why in report.skipped[:_LISTED])
        raise TranslateError(f"--in {inp}: {len(report.skipped)} of {len(files)} files cannot be read:\n{listed}\n"
                          "Fix or remove them, or pass --skip-corrupt to translate the others. Nothing was written.")
    if not images:
        raise TranslateError(f"--in {inp}: none of the {len(files)} image files could be read")
    fake = trained.translate(np.stack(images), reverse=reverse, batch_size=batch_size)
    for r, image in zip(kept, fake):
        A.atomic_write_bytes(out / r, _encode(image, r.suffix))
        report.written.append(str(r))
    return report
