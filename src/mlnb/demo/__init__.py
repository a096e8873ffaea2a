"""The offline demo: replicas of MNIST, CelebA and the heart MRI set built from package-shipped data.

Top of the import graph: it may use the data and faces stages; neither imports it.
"""
