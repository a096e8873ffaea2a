# Data stage: fetch and verify every file, prepare each dataset, log statistics.
# Sources are URLs (with mirrors) or local paths; the offline demo points them at
# the replicas the demo_* rules build, so the demo runs these very rules.

DATA_TARGETS = ["results/reports/data/summary.json"]


wildcard_constraints:
    dataset="|".join(RAW_FILES),
    filename="|".join(sorted({name for files in RAW_FILES.values() for name in files.values()})),


# Offline replicas in the real formats, built from package-shipped data.
for replica, files in RAW_FILES.items():

    rule:
        name:
            f"demo_{replica}"
        output:
            [f"results/demo/{replica}/{filename}" for filename in files.values()],
            record=f"results/demo/{replica}/replica_record.json",
        log:
            f"results/logs/demo/{replica}.log",
        localrule: True
        conda:
            "../../envs/mlnb.yaml"
        params:
            dataset=replica,
            seed=config["seed"],
        shell:
            "mlnb demo-data --dataset {params.dataset} --out results/demo --seed {params.seed} > {log} 2>&1"


# Downloads run on the submitting machine: compute nodes often have no internet.
rule fetch:
    input:
        lambda wc: source_inputs(wc.dataset, FILE_KEYS[(wc.dataset, wc.filename)]),
    output:
        "results/data/{dataset}/{filename}",
    log:
        "results/logs/fetch/{dataset}/{filename}.log",
    localrule: True
    conda:
        "../../envs/mlnb.yaml"
    resources:
        runtime=120,
        downloads=1,
        # Resources, not params: how patiently a file is fetched never changes its bytes
        # (a number as text: Snakemake truncates a float resource to an integer).
        download_retries=config["download"]["retries"],
        download_timeout=str(config["download"]["timeout"]),
    params:
        source=lambda wc: source_args(wc.dataset, FILE_KEYS[(wc.dataset, wc.filename)]),
    shell:
        "mlnb fetch {params.source} --retries {resources.download_retries} "
        "--timeout {resources.download_timeout} --out {output} > {log} 2>&1"


rule prepare_mnist:
    input:
        train_images=raw("mnist", "train_images"),
        train_labels=raw("mnist", "train_labels"),
        test_images=raw("mnist", "test_images"),
        test_labels=raw("mnist", "test_labels"),
    output:
        "results/data/mnist/mnist.npz",
    log:
        "results/logs/prepare/mnist.log",
    conda:
        "../../envs/mlnb.yaml"
    resources:
        mem_mb=2000,
    shell:
        "mlnb prepare-mnist --train-images {input.train_images} --train-labels {input.train_labels} "
        "--test-images {input.test_images} --test-labels {input.test_labels} --out {output} > {log} 2>&1"


rule prepare_celeba:
    input:
        images=raw("celeba", "images"),
        landmarks=raw("celeba", "landmarks"),
        partition=raw("celeba", "partition"),
    output:
        "results/data/celeba/index.csv",
    log:
        "results/logs/prepare/celeba.log",
    conda:
        "../../envs/mlnb.yaml"
    params:
        limit=f"--limit {config['data']['celeba']['limit']}" if config["data"]["celeba"]["limit"] else "",
    shell:
        "mlnb prepare-celeba --images {input.images} --landmarks {input.landmarks} "
        "--partition {input.partition} {params.limit} --out {output} > {log} 2>&1"


checkpoint prepare_heart:
    input:
        raw("heart", "archive"),
    output:
        index="results/data/heart/index.csv",
        extracted=directory("results/data/heart/extracted"),
    log:
        "results/logs/prepare/heart.log",
    conda:
        "../../envs/mlnb.yaml"
    resources:
        mem_mb=4000,
    shell:
        "mlnb prepare-heart --archive {input} --extract-to {output.extracted} --out {output.index} > {log} 2>&1"


rule log_data:
    input:
        EXPERIMENT_MARKER,
        mnist="results/data/mnist/mnist.npz",
        celeba_index="results/data/celeba/index.csv",
        celeba_zip=raw("celeba", "images"),
        heart_index="results/data/heart/index.csv",
    output:
        summary="results/reports/data/summary.json",
        previews=report(expand("results/reports/data/{name}_preview.png", name=RAW_FILES), category="Data"),
    log:
        "results/logs/report/data.log",
    conda:
        "../../envs/mlnb.yaml"
    params:
        tracking=tracking_args("data", data=settings_json("data")),
    shell:
        job_shell(
            "mlnb log-data --mnist {input.mnist} --celeba-index {input.celeba_index} "
            "--celeba-zip {input.celeba_zip} --heart-index {input.heart_index} "
            "--out results/reports/data {params.tracking} > {log} 2>&1"
        )
