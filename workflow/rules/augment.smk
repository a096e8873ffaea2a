# Augmentation stage: every case of the MRI set into N augmented copies (one job
# per case, each with its segmentation), then one manifest with previews logged
# to MLflow. The case list comes from the heart index, which the prepare_heart
# checkpoint writes, so the DAG is re-evaluated once it exists; so does each job's memory
# request (its case's shape in the index).

AUGMENT_TARGETS = [f"{AUGMENT_DIR}/manifest.csv"]


wildcard_constraints:
    case="[A-Za-z0-9_.-]+",


# Every copy of one case: {case} stays a wildcard, {copy} runs over the copies.
AUGMENT_COPY = f"{AUGMENT_DIR}/{{{{case}}}}/{{{{case}}}}_aug{{copy}}"


rule augment_case:
    input:
        unpack(heart_case_files),
    output:
        images=expand(f"{AUGMENT_COPY}.nii.gz", copy=AUGMENT_COPIES),
        segs=expand(f"{AUGMENT_COPY}_seg.nii.gz", copy=AUGMENT_COPIES),
        records=expand(f"{AUGMENT_COPY}.json", copy=AUGMENT_COPIES),
        previews=report(
            expand(f"{AUGMENT_COPY}_preview.png", copy=AUGMENT_PREVIEW_COPIES),
            category="Augmentation",
            subcategory="{case}",
        ),
    log:
        "results/logs/augment/heart/{case}.log",
    benchmark:
        "results/benchmarks/augment/heart/{case}.tsv"
    conda:
        "../../envs/mlnb.yaml"
    threads: config["augment"]["threads"]
    resources:
        mem_mb=augment_mem_mb,
        runtime=10,
    params:
        out=lambda wildcards: f"{AUGMENT_DIR}/{wildcards.case}",
        settings=settings_json("augment"),
        seed=config["seed"],
        input_md5=heart_case_md5,
    shell:
        "mlnb augment {input.image} --seg {input.seg} --out {params.out} --item {wildcards.case} "
        "--seed {params.seed} --settings {params.settings:q} --threads {threads} > {log} 2>&1"


rule gather_augment:
    input:
        EXPERIMENT_MARKER,
        records=augment_records,
        index="results/data/heart/index.csv",
    output:
        manifest=f"{AUGMENT_DIR}/manifest.csv",
    log:
        "results/logs/augment/heart/gather.log",
    conda:
        "../../envs/mlnb.yaml"
    params:
        tracking=tracking_args("augment-heart", augment=settings_json("augment"), seed=json.dumps(config["seed"])),
    shell:
        job_shell(
            "mlnb gather-augment {input.records} --manifest {output.manifest} {params.tracking} "
            "--input-file heart_index={input.index} > {log} 2>&1"
        )
