"""The blog's MNIST CNN and its ladder of variants (07-cnn-tensorflow)."""
