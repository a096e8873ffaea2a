"""The DCGAN stage: training on packed images, samples, FID and the Turing-test page."""
