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
    needs_source_classifier: bool = False   # reads the source's classifier (stage classifier) as its frozen f (DTN)
    reversible: bool = False           # also learns target → source (its evaluation judges that way too)
    # keys of its section (train.* or transfer.*) that cannot change this family's model: left out of its
    # artifact identity
    unused_keys: frozenset[str] = frozenset()


ALL: dict[str, FamilySpec] = {s.name: s for s in (
    FamilySpec("dcgan", "Radford et al. 2015", "ganops.models.dcgan:DCGAN",
               unused_keys=frozenset({"class_conditional", "class_swap"})),   # h_dim, mode_seeking: self-conditioned
    FamilySpec("cgan", "Mirza & Osindero 2014", "ganops.models.cgan:CGAN",
               unused_keys=frozenset({"class_conditional", "class_swap", "mode_seeking", "self_condition"})),
    FamilySpec("icgan", "Casanova et al. 2021", "ganops.models.icgan:ICGAN", needs_neighbors=True,
               unused_keys=frozenset({"self_condition"})),
    FamilySpec("cyclegan", "Zhu et al. 2017", "ganops.models.cyclegan:CycleGAN", kind="transfer", reversible=True,
               unused_keys=frozenset({"const_weight", "tid_weight", "tv_weight", "source_evaluator",
                                         "target_evaluator", "source_classifier"})),
    FamilySpec("dtn", "Taigman et al. 2016", "ganops.models.dtn:DTN", kind="transfer", needs_source_classifier=True,
               unused_keys=frozenset({"n_blocks", "cycle_weight", "identity_weight", "pool_size",
                                         "source_evaluator", "target_evaluator"})),
)}
# the square sides the generator families' networks are built for: G doubles 4×4 up to the side, D halves it down
RESOLUTIONS = (16, 32, 64, 128, 256, 512, 1024)
TRANSFER_SPECS = {name: s for name, s in ALL.items() if s.kind == "transfer"}
SPECS = {name: s for name, s in ALL.items() if s.kind == "generator"}   # the generator families
FAMILY_NAMES = tuple(SPECS)
TRANSFER_NAMES = tuple(TRANSFER_SPECS)
