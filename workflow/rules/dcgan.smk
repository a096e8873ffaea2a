# DCGAN stage (the blog's GAN series, 02..06-gan*): one run per dataset in
# dcgan.datasets, on the packed images: the aligned faces (faces stage) and the
# MNIST digits. The real images' Inception statistics are computed once per
# dataset (dcgan_real_stats) and cached for every FID of the run. Checkpoints
# go to results/checkpoints/dcgan/<dataset>/, outside the outputs, so a stopped
# job (Snakemake, Slurm) resumes where it stopped when it is run again.

DCGAN_DIR = "results/dcgan"
DCGAN_IMAGES = {"celeba": f"{FACES_DIR}/faces.npy", "mnist": "results/data/mnist/mnist.npz"}
DCGAN_TARGETS = [f"{DCGAN_DIR}/{dataset}/summary.json" for dataset in config["dcgan"]["datasets"]]
# What the statistics depend on: the subset size (and the seed that draws it), the device.
DCGAN_STATS_SETTINGS = settings_json("dcgan", "fid_real_samples")
DCGAN_STATS_DEVICE = settings_json("train", "device")
# Memory for the images as uint8 (host copy) plus the networks: more for the 202,599 faces.
DCGAN_MEM_MB = {"celeba": 12000, "mnist": 4000}


wildcard_constraints:
    gan_dataset="|".join(DCGAN_IMAGES),


rule dcgan_real_stats:
    input:
        images=lambda wildcards: DCGAN_IMAGES[wildcards.gan_dataset],
    output:
        f"{DCGAN_DIR}/{{gan_dataset}}/real_stats.npz",
    log:
        "results/logs/dcgan/{gan_dataset}/real_stats.log",
    benchmark:
        "results/benchmarks/dcgan/{gan_dataset}/real_stats.tsv"
    conda:
        "../../envs/mlnb.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=lambda wildcards: DCGAN_MEM_MB[wildcards.gan_dataset],
        runtime=60,
        gpu=config["train"]["gpu"],
    params:
        settings=DCGAN_STATS_SETTINGS,
        train=DCGAN_STATS_DEVICE,
        seed=config["seed"],
    shell:
        "mlnb fid-stats {input.images} --dataset {wildcards.gan_dataset} --seed {params.seed} "
        "--settings {params.settings:q} --train-settings {params.train:q} --threads {threads} "
        "--out {output} > {log} 2>&1"


rule train_dcgan:
    input:
        EXPERIMENT_MARKER,
        images=lambda wildcards: DCGAN_IMAGES[wildcards.gan_dataset],
        real_stats=rules.dcgan_real_stats.output,
    output:
        summary=f"{DCGAN_DIR}/{{gan_dataset}}/summary.json",
        generator=f"{DCGAN_DIR}/{{gan_dataset}}/generator.pt",
        gif=report(f"{DCGAN_DIR}/{{gan_dataset}}/samples.gif", category="DCGAN", subcategory="{gan_dataset}"),
        turing=report(f"{DCGAN_DIR}/{{gan_dataset}}/turing.html", category="DCGAN", subcategory="{gan_dataset}"),
        samples=directory(f"{DCGAN_DIR}/{{gan_dataset}}/samples"),
        timing="results/benchmarks/dcgan/{gan_dataset}/timing.json",
    log:
        "results/logs/dcgan/{gan_dataset}/train.log",
    benchmark:
        "results/benchmarks/dcgan/{gan_dataset}/train.tsv"
    conda:
        "../../envs/mlnb.yaml"
    threads: TRAIN_JOB_THREADS
    resources:
        mem_mb=lambda wildcards: DCGAN_MEM_MB[wildcards.gan_dataset] * TRAIN_PROCESSES,
        runtime=480,
        gpu=TRAIN_JOB_GPUS,
        nodes=1,  # torchrun --standalone: every process on one machine (Slurm --nodes=1)
        launcher=TRAIN_LAUNCHER,
        checkpoint_every=config["train"]["checkpoint_every"],
    params:
        settings=settings_json("dcgan"),
        train=TRAIN_SETTINGS,
        seed=config["seed"],
        faces=lambda wildcards: "--faces" if wildcards.gan_dataset == "celeba" else "",
        out=lambda wildcards, output: Path(output.summary).parent,
        checkpoints=lambda wildcards: f"results/checkpoints/dcgan/{wildcards.gan_dataset}",
        tracking=lambda wildcards: tracking_args(
            f"dcgan-{wildcards.gan_dataset}",
            dcgan=settings_json("dcgan"),
            train=TRAIN_SETTINGS,
            seed=json.dumps(config["seed"]),
        ),
    shell:
        job_shell(
            "{resources.launcher}mlnb train-dcgan --data {input.images} --dataset {wildcards.gan_dataset} "
            "--real-stats {input.real_stats} --seed {params.seed} {params.faces} --settings {params.settings:q} "
            "--train-settings {params.train:q} --threads {threads} --checkpoint-every {resources.checkpoint_every} "
            "--out {params.out} --checkpoint-dir {params.checkpoints} --timing {output.timing} --rule train_dcgan "
            "{params.tracking} > {log} 2>&1",
            training=True,
        )
