# mlnb: the "Machine Learning Notebook" blog series as one reproducible pipeline.
# This file is the table of contents; each stage lives in workflow/rules/.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/tracking.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/faces.smk"
include: "workflow/rules/augment.smk"
include: "workflow/rules/cnn.smk"
include: "workflow/rules/scratch.smk"
include: "workflow/rules/dcgan.smk"
include: "workflow/rules/segment.smk"


rule all:
    default_target: True
    input:
        DATA_TARGETS,
        FACES_TARGETS,
        AUGMENT_TARGETS,
        CNN_TARGETS,
        GATES_TARGETS,
        MLP_TARGETS,
        DCGAN_TARGETS,
        SEGMENT_TARGETS,
