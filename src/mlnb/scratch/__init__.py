"""The from-scratch network (01-backprop): hand-written back-propagation on the logic gates and MNIST."""
