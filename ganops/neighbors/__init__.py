"""IC-GAN's k-NN neighborhoods: FAISS search (``search``), what valid features and neighborhoods are
(``validity``), and how a neighborhood looks (``diagnostics``)."""
