# Segmentation stage (the augmentation post's open question: does its augmentation help?).
#
# A 3-D U-Net on the heart set, trained once per (arm, fold) of segment.arms x segment.folds: the arms
# differ only in their augmentation (none; offline, the augment stage's saved copies; onthefly, its random
# policy on the device; or one transform of that policy). prepare_segment packs the labelled cases once and
# fixes the folds, prepare_segment_copies packs the augment stage's copies (for the offline arm only),
# and report_segment puts every arm against none. Checkpoints go to results/checkpoints/segment/<arm>-fold<k>/,
# outside the outputs, so a stopped job (Snakemake, Slurm) resumes where it stopped when it is run again.

SEGMENT_DIR = "results/segment"
SEGMENT_CASES = f"{SEGMENT_DIR}/data/cases"
SEGMENT_COPIES = f"{SEGMENT_DIR}/data/copies"
SEGMENT_TIMING_DIR = "results/benchmarks/segment"
SEGMENT_REPORT = "results/reports/segmentation.md"
SEGMENT_TARGETS = [SEGMENT_REPORT]
SEGMENT_ARMS = config["segment"]["arms"]
SEGMENT_FOLDS = range(config["segment"]["folds"])
# A pack's files (mlnb.segment.preprocess: IMAGES, LABELS, INDEX) and the report's figures
# (mlnb.segment.report.REPORT_FIGURES).
SEGMENT_PACK = ("images.npy", "labels.npy", "index.json")
SEGMENT_FIGURES = ("dice_per_case.png", "best_case.png", "worst_case.png")
# What one (arm, fold) uses of the segment section: not the list of arms (adding an arm reruns no other),
# nor inference_batch (how it runs: a resource).
SEGMENT_SETTINGS = settings_json(
    "segment", *(key for key in config["segment"] if key != "arms" and key not in OPERATIONAL_KEYS["segment"])
)
# The arms that augment on the fly (onthefly and the single transforms; mlnb.segment.settings.arm_policy) use
# the augment section's random draws (mlnb.augment.policy.RandomPolicy's fields but the saved copies' crop and
# grid) and spline order, nothing else of it: the copies reach the offline arm through its input, their pack.
SEGMENT_UNAUGMENTED_ARMS = ("none", "offline")
SEGMENT_POLICY_KEYS = (
    "order",
    "transforms",
    "min_transforms",
    "max_transforms",
    "rotation_degrees",
    "scale_range",
    "intensity_range",
    "translation_pixels",
    "slice_shift_pixels",
    "slice_shift_fraction",
)
# Arm -> the augment settings its job uses, by config section: the policy's, or none.
SEGMENT_AUGMENT = {
    arm: {} if arm in SEGMENT_UNAUGMENTED_ARMS else {"augment": settings_json("augment", *SEGMENT_POLICY_KEYS)}
    for arm in SEGMENT_ARMS
}


wildcard_constraints:
    arm="|".join(SEGMENT_ARMS),
    fold=r"\d+",


rule prepare_segment:
    input:
        index="results/data/heart/index.csv",
    output:
        pack=expand(f"{SEGMENT_CASES}/{{name}}", name=SEGMENT_PACK),
        folds=f"{SEGMENT_CASES}/folds.json",
    log:
        "results/logs/segment/prepare.log",
    conda:
        "../../envs/mlnb.yaml"
    resources:
        mem_mb=4000,
    params:
        folds=config["segment"]["folds"],
        seed=config["seed"],
        out=lambda wildcards, output: Path(output.folds).parent,
    shell:
        "mlnb prepare-segment --index {input.index} --out {params.out} --folds {params.folds} "
        "--seed {params.seed} > {log} 2>&1"


# The offline arm's copies, resampled to the originals' spacing (planned only when an arm trains on them).
rule prepare_segment_copies:
    input:
        manifest=f"{AUGMENT_DIR}/manifest.csv",
        like=rules.prepare_segment.output.pack,
    output:
        pack=expand(f"{SEGMENT_COPIES}/{{name}}", name=SEGMENT_PACK),
    log:
        "results/logs/segment/prepare_copies.log",
    conda:
        "../../envs/mlnb.yaml"
    resources:
        mem_mb=8000,
    params:
        like=lambda wildcards, input: Path(input.like[0]).parent,
        out=lambda wildcards, output: Path(output.pack[0]).parent,
    shell:
        "mlnb prepare-segment --manifest {input.manifest} --like {params.like} --out {params.out} > {log} 2>&1"


rule train_segment:
    input:
        EXPERIMENT_MARKER,
        cases=rules.prepare_segment.output.pack,
        folds=rules.prepare_segment.output.folds,
        copies=lambda wildcards: rules.prepare_segment_copies.output.pack if wildcards.arm == "offline" else [],
    output:
        metrics=f"{SEGMENT_DIR}/{{arm}}/fold{{fold}}/metrics.json",
        model=f"{SEGMENT_DIR}/{{arm}}/fold{{fold}}/model.pt",
        predictions=directory(f"{SEGMENT_DIR}/{{arm}}/fold{{fold}}/predictions"),
        previews=directory(f"{SEGMENT_DIR}/{{arm}}/fold{{fold}}/previews"),
        timing=f"{SEGMENT_TIMING_DIR}/{{arm}}-fold{{fold}}.json",
    log:
        "results/logs/segment/{arm}-fold{fold}.log",
    benchmark:
        f"{SEGMENT_TIMING_DIR}/{{arm}}-fold{{fold}}.tsv"
    conda:
        "../../envs/mlnb.yaml"
    threads: TRAIN_JOB_THREADS
    resources:
        mem_mb=8000 * TRAIN_PROCESSES,
        runtime=120,
        gpu=TRAIN_JOB_GPUS,
        nodes=1,  # torchrun --standalone: every process on one machine (Slurm --nodes=1)
        launcher=TRAIN_LAUNCHER,
        checkpoint_every=config["train"]["checkpoint_every"],
        inference_batch=config["segment"]["inference_batch"],
    params:
        settings=SEGMENT_SETTINGS,
        augment=lambda wildcards: " ".join(
            f"--augment-settings {shlex.quote(value)}" for value in SEGMENT_AUGMENT[wildcards.arm].values()
        ),
        train=TRAIN_SETTINGS,
        seed=config["seed"],
        data=lambda wildcards, input: Path(input.cases[0]).parent,
        copies=lambda wildcards, input: f"--copies {Path(input.copies[0]).parent}" if input.copies else "",
        out=lambda wildcards, output: Path(output.metrics).parent,
        checkpoints=lambda wildcards: f"results/checkpoints/segment/{wildcards.arm}-fold{wildcards.fold}",
        tracking=lambda wildcards: tracking_args(
            f"segment-{wildcards.arm}-fold{wildcards.fold}",
            segment=SEGMENT_SETTINGS,
            **SEGMENT_AUGMENT[wildcards.arm],
            train=TRAIN_SETTINGS,
            seed=json.dumps(config["seed"]),
        ),
    shell:
        job_shell(
            "{resources.launcher}mlnb train-segment --data {params.data} --folds-file {input.folds} "
            "--arm {wildcards.arm} --fold {wildcards.fold} {params.copies} --seed {params.seed} "
            "--settings {params.settings:q} {params.augment} --train-settings {params.train:q} --threads {threads} "
            "--checkpoint-every {resources.checkpoint_every} --inference-batch {resources.inference_batch} "
            "--out {params.out} --checkpoint-dir {params.checkpoints} --timing {output.timing} "
            "--rule train_segment {params.tracking} > {log} 2>&1",
            training=True,
        )


rule report_segment:
    input:
        EXPERIMENT_MARKER,
        metrics=expand(rules.train_segment.output.metrics, arm=SEGMENT_ARMS, fold=SEGMENT_FOLDS),
    output:
        report=report(SEGMENT_REPORT, category="segmentation"),
        figures=report(expand("results/reports/segmentation/{name}", name=SEGMENT_FIGURES), category="segmentation"),
    log:
        "results/logs/report/segmentation.log",
    conda:
        "../../envs/mlnb.yaml"
    params:
        seed=config["seed"],
        figures=lambda wildcards, output: Path(output.figures[0]).parent,
        # each (arm, fold)'s metrics, logged as an input of the report's run
        inputs=lambda wildcards, input: " ".join(
            f"--input-file {Path(path).parent.parent.name}-{Path(path).parent.name}={path}" for path in input.metrics
        ),
        tracking=tracking_args(
            "segment-report", segment=settings_json("segment", "arms", "folds"), seed=json.dumps(config["seed"])
        ),
    shell:
        job_shell(
            "mlnb report-segment {input.metrics} --out {output.report} --figures {params.figures} "
            "--seed {params.seed} {params.inputs} {params.tracking} > {log} 2>&1"
        )
