"""Training machinery shared by the CNN, the from-scratch MLP and the DCGAN.

``device`` (where and in which number format), ``data`` (a whole dataset on the
device, batches by index), ``checkpoint`` (atomic save and exact resume) and
``loop`` (the step loop: progress, metrics, checkpoints, cooperative stop).
"""
