"""Models: the from-scratch back-propagation network (numpy or torch through the array API), the torch CNNs and the blog's DCGAN."""
