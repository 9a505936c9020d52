"""The GAN families by name and what each reads from the pipeline: the declaration that the schema,
artifact identities and both front doors use without loading any network code (the networks and
their training live in ``ganops.models``, one file per family)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FamilySpec:
    name: str
    paper: str
    impl: str                          # "module:Class" of its networks and step (ganops.models)
    kind: str = "generator"            # generator: samples a dataset (train.*); transfer: translates (transfer.*)
    needs_neighbors: bool = False      # reads the embeddings and k-NN neighborhoods (IC-GAN)
    # train.* keys that cannot change this family's model: left out of its artifact identity
    unused_train_keys: frozenset[str] = frozenset()


ALL: dict[str, FamilySpec] = {s.name: s for s in (
    FamilySpec("dcgan", "Radford et al. 2015", "ganops.models.dcgan:DCGAN",
               unused_train_keys=frozenset({"class_conditional", "h_dim"})),
    FamilySpec("cgan", "Mirza & Osindero 2014", "ganops.models.cgan:CGAN",
               unused_train_keys=frozenset({"class_conditional"})),
    FamilySpec("icgan", "Casanova et al. 2021", "ganops.models.icgan:ICGAN", needs_neighbors=True),
    FamilySpec("cyclegan", "Zhu et al. 2017", "ganops.models.cyclegan:CycleGAN", kind="transfer"),
    FamilySpec("dtn", "Taigman et al. 2016", "ganops.models.dtn:DTN", kind="transfer"),
)}
TRANSFER_SPECS = {name: s for name, s in ALL.items() if s.kind == "transfer"}
SPECS = {name: s for name, s in ALL.items() if s.kind == "generator"}   # the generator families
FAMILY_NAMES = tuple(SPECS)
TRANSFER_NAMES = tuple(TRANSFER_SPECS)
