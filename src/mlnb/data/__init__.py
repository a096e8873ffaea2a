"""The data stage: verified downloads, safe extraction, and checked indexes of MNIST, CelebA and MSD."""
