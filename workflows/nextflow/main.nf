#!/usr/bin/env nextflow
// scdeep example pipeline: every sample of a samplesheet x every method x every seed,
// then one metrics table and a summary figure.
//
//   nextflow run workflows/nextflow/main.nf --input samplesheet.csv --methods scmae,pca --seeds 0,1,2 -profile local
//   nextflow run ... -profile slurm --slurm_queue cpu        (one SLURM job per run)
//   nextflow run ... -profile slurm,gpu                      (CUDA training on GPU nodes)
//
// samplesheet.csv: sample,counts[,label_key][,batch_key]   (.h5ad obs columns: ground truth; each cell's batch)

nextflow.enable.dsl = 2

include { SCDEEP_RUN     } from './modules/scdeep/run/main'
include { SCDEEP_SUMMARY } from './modules/scdeep/summary/main'

params.input   = null
params.methods = 'scmae,pca'
params.seeds   = '0,1,2'
params.outdir  = 'results'

workflow {
    if (!params.input) {
        error "Missing --input samplesheet.csv (columns: sample,counts[,label_key][,batch_key])"
    }
    ch_samples = Channel
        .fromPath(params.input, checkIfExists: true)
        .splitCsv(header: true)
        .map { row ->
            if (!row.sample || !row.counts) {
                error "samplesheet ${params.input}: every row needs `sample` and `counts` (got ${row})"
            }
            def meta = [id: row.sample, sample: row.sample, label_key: row.label_key ?: null, batch_key: row.batch_key ?: null]
            [meta, file(row.counts, checkIfExists: true)]
        }

    ch_methods = Channel.fromList(params.methods.toString().tokenize(','))
    ch_seeds   = Channel.fromList(params.seeds.toString().tokenize(','))

    ch_runs = ch_samples
        .combine(ch_methods)
        .combine(ch_seeds)
        .map { meta, counts, method, seed ->
            [meta + [id: "${meta.sample}_${method}_seed${seed}", method: method, seed: seed], counts]
        }

    SCDEEP_RUN(ch_runs)

    ch_table = SCDEEP_RUN.out.metrics
        .map { meta, tsv -> tsv }
        .collectFile(name: 'metrics.tsv', keepHeader: true, skip: 1, sort: true, storeDir: params.outdir)

    SCDEEP_SUMMARY(ch_table)

    SCDEEP_RUN.out.versions
        .mix(SCDEEP_SUMMARY.out.versions)
        .unique()
        .collectFile(name: 'versions.yml', storeDir: params.outdir)
}
