// nf-core style module: deep self-supervised clustering of one count matrix with the
// scdeep CLI. Method, seed and other flags come through task.ext.args (see
// ../../../nextflow.config); set ext.use_gpu = true (the `gpu` profile) to train on CUDA.
process SCDEEP_RUN {
    tag "$meta.id"
    label 'process_medium'

    // No public container or Bioconda package yet: set process.container (or put
    // `scdeep` on PATH) in your config. The `gpu` profile requests an accelerator.

    input:
    tuple val(meta), path(counts)

    output:
    tuple val(meta), path("*.h5ad")         , emit: h5ad
    tuple val(meta), path("*.embedding.tsv"), emit: embedding
    tuple val(meta), path("*.labels.tsv")   , emit: labels
    tuple val(meta), path("*.metrics.tsv")  , emit: metrics, optional: true
    tuple val(meta), path("*.metrics.json") , emit: metrics_json, optional: true
    tuple val(meta), path("*.history.json") , emit: history
    tuple val(meta), path("*.run.json")     , emit: run
    path "versions.yml"                     , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: "${meta.id}"
    def device = task.ext.use_gpu ? 'cuda' : 'cpu'
    def truth = meta.label_key ? "--label-key ${meta.label_key}" : ''
    def batch = meta.batch_key ? "--batch-key ${meta.batch_key}" : ''
    """
    scdeep run \\
        --input ${counts} \\
        --out ${prefix}_out \\
        --threads ${task.cpus} \\
        --device ${device} \\
        ${truth} \\
        ${batch} \\
        ${args}

    mv ${prefix}_out/*.scdeep.h5ad ${prefix}.h5ad
    mv ${prefix}_out/embedding.tsv ${prefix}.embedding.tsv
    mv ${prefix}_out/labels.tsv ${prefix}.labels.tsv
    mv ${prefix}_out/history.json ${prefix}.history.json
    mv ${prefix}_out/run.json ${prefix}.run.json
    if [ -f ${prefix}_out/metrics.tsv ]; then
        # one row per run, with the run's id first, so that tables concatenate
        paste <(printf 'id\\n${meta.id}\\n') ${prefix}_out/metrics.tsv > ${prefix}.metrics.tsv
        mv ${prefix}_out/metrics.json ${prefix}.metrics.json
    fi

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        scdeep: \$(scdeep --version | sed 's/^scdeep //')
        libtorch: \$(scdeep version | sed -n 's/^libtorch //p')
    END_VERSIONS
    """

    stub:
    // (no `def`: a plain Groovy parse sees script: and stub: in one scope)
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    touch ${prefix}.h5ad ${prefix}.embedding.tsv ${prefix}.labels.tsv ${prefix}.history.json ${prefix}.run.json

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        scdeep: \$(scdeep --version | sed 's/^scdeep //')
        libtorch: \$(scdeep version | sed -n 's/^libtorch //p')
    END_VERSIONS
    """
}
