"""The plumbing beneath every stage: the parameters and their schema, artifact identities and lineage,
atomic artifacts and locks, user errors, the device, progress, and images between arrays, tensors and PNGs."""
