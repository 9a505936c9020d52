"""ganops: GAN research made operable — datasets, embeddings, k-NN neighborhoods, training, evaluation."""

__version__ = "0.1.0"
