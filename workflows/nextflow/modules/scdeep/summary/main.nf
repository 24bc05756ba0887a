// Concatenated metrics of many runs (one TSV, a header and one row per run) as a table
// and a summary figure (each run a point, the median per method a bar).
process SCDEEP_SUMMARY {
    tag "metrics"
    label 'process_single'

    input:
    path(metrics)

    output:
    path "summary.png" , emit: png
    path "versions.yml", emit: versions

    script:
    """
    scdeep plot --summary ${metrics} --out summary.png

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        scdeep: \$(scdeep --version | sed 's/^scdeep //')
    END_VERSIONS
    """

    stub:
    """
    touch summary.png versions.yml
    """
}
