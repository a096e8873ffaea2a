# Faces stage: detect, landmark and align every CelebA image with dlib and
# OpenFace's geometry. Scatter: faces.shards jobs, each reading its contiguous
# share of the index straight from the zip (never one job per image). Gather:
# one memory-mappable uint8 array, one manifest in index order and a summary
# (the shards are temporary: deleted once gathered). Report: a preview grid, and
# the summary logged to MLflow (a preview edit reruns only the report).

FACES_DIR = "results/faces/celeba"
FACES_SHARD_DIRS = [f"{FACES_DIR}/shards/{shard}" for shard in range(config["faces"]["shards"])]
FACES_TARGETS = [f"{FACES_DIR}/{name}" for name in ("faces.npy", "manifest.csv", "preview.png", "summary.json")]


wildcard_constraints:
    shard=r"\d+",


rule align_faces:
    input:
        images=raw("celeba", "images"),
        index="results/data/celeba/index.csv",
    output:
        faces=temp(f"{FACES_DIR}/shards/{{shard}}/faces.npy"),
        manifest=temp(f"{FACES_DIR}/shards/{{shard}}/manifest.csv"),
    log:
        "results/logs/faces/celeba/align_{shard}.log",
    benchmark:
        "results/benchmarks/faces/celeba/align_{shard}.tsv"
    conda:
        "../../envs/mlnb.yaml"
    threads: config["faces"]["threads"]
    resources:
        # each worker holds dlib's ~100 MB model and the zip's directory (~125 MB for CelebA)
        mem_mb=lambda wildcards, threads: 600 + 350 * threads,
        runtime=60,
    params:
        out=lambda wildcards, output: Path(output.faces).parent,
        settings=settings_json("faces", "size", "landmarks", "upsample", "min_side", "shards"),
    shell:
        "mlnb align {input.images} --index {input.index} --shard {wildcards.shard} "
        "--settings {params.settings:q} --threads {threads} --out {params.out} > {log} 2>&1"


rule gather_faces:
    input:
        faces=[f"{shard}/faces.npy" for shard in FACES_SHARD_DIRS],
        manifests=[f"{shard}/manifest.csv" for shard in FACES_SHARD_DIRS],
    output:
        faces=f"{FACES_DIR}/faces.npy",
        manifest=f"{FACES_DIR}/manifest.csv",
        summary=f"{FACES_DIR}/summary.json",
    log:
        "results/logs/faces/celeba/gather.log",
    benchmark:
        "results/benchmarks/faces/celeba/gather.tsv"
    conda:
        "../../envs/mlnb.yaml"
    resources:
        mem_mb=1000,
        runtime=30,
    params:
        shards=lambda wildcards, input: [str(Path(faces).parent) for faces in input.faces],
        out=lambda wildcards, output: Path(output.faces).parent,
    shell:
        "mlnb gather-faces {params.shards} --out {params.out} > {log} 2>&1"


rule report_faces:
    input:
        EXPERIMENT_MARKER,
        faces=f"{FACES_DIR}/faces.npy",
        summary=f"{FACES_DIR}/summary.json",
        images=raw("celeba", "images"),
        index="results/data/celeba/index.csv",
    output:
        preview=report(f"{FACES_DIR}/preview.png", category="Faces"),
    log:
        "results/logs/faces/celeba/report.log",
    conda:
        "../../envs/mlnb.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        folder=lambda wildcards, input: Path(input.faces).parent,
        settings=settings_json("faces", "preview"),
        tracking=tracking_args("faces-celeba", faces=settings_json("faces")),
    shell:
        job_shell(
            "mlnb report-faces {params.folder} --settings {params.settings:q} {params.tracking} "
            "--input-file celeba_zip={input.images} --input-file celeba_index={input.index} > {log} 2>&1"
        )
