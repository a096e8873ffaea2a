"""Models: the from-scratch back-propagation network (numpy or torch through the array API) and the torch CNNs."""
