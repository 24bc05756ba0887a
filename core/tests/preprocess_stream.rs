//! Preprocessing a matrix read in row blocks (`preprocess::stream`) gives what `prepare`
//! gives on the whole matrix: the same cells, genes, values, size factors, scaler and
//! HVG statistics, bit for bit, for every recipe it runs and block sizes that do and do
//! not line up with the 2048-row reduction blocks.

use scdeep_core::matrix::{Csr, Dataset};
use scdeep_core::preprocess::stream::{prepare_streamed, streamable, InMemoryRows};
use scdeep_core::preprocess::{self, HvgFlavor, Names, Prepared, PreprocessConfig, Recipe};

/// Cells x genes counts with genes of unequal means and dispersions, some empty cells,
/// some empty and rare genes; `fractional` adds non-integer values (the DCA recipe ceils).
fn counts(cells: usize, genes: usize, fractional: bool) -> Dataset {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let (mut indptr, mut indices, mut data) = (vec![0usize], Vec::new(), Vec::new());
    for i in 0..cells {
        let group = i % 3;
        for j in 0..genes {
            if i % 997 == 5 || j % 401 == 7 || (j % 251 == 3 && i % 50 != 0) {
                continue; // empty cells, empty genes, genes in few cells
            }
            let rate = 0.02 + 0.3 * ((j * 7919) % 97) as f64 / 97.0 + if (j / 40) % 3 == group { 0.4 } else { 0.0 };
            if next() < rate {
                let v = 1.0 + (next() * 6.0 * rate).floor();
                indices.push(j as u32);
                data.push(if fractional && next() < 0.1 { v as f32 + 0.25 } else { v as f32 });
            }
        }
        indptr.push(data.len());
    }
    let x = Csr { n_rows: cells, n_cols: genes, indptr, indices, data };
    let cells: Vec<String> = (0..cells).map(|i| format!("c{i}")).collect();
    let labels = Some((0..cells.len()).map(|i| format!("g{}", i % 3)).collect());
    Dataset { x, cells, genes: (0..genes).map(|j| format!("g{j}")).collect(), labels, batches: None, source: "sim".into() }
}

fn same_f64(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

fn assert_same(a: &Prepared, b: &Prepared, what: &str) {
    assert!(a.x == b.x, "{what}: normalised values differ");
    assert_eq!(a.counts.as_deref(), b.counts.as_deref(), "{what}: counts differ");
    assert_eq!(a.genes, b.genes, "{what}: genes");
    assert_eq!(a.cells, b.cells, "{what}: cells");
    assert_eq!(a.labels, b.labels, "{what}: labels");
    assert_eq!(a.cell_index, b.cell_index, "{what}: cell index");
    assert_eq!(a.size_factors, b.size_factors, "{what}: size factors");
    assert_eq!(a.target_sum.to_bits(), b.target_sum.to_bits(), "{what}: target sum");
    assert_eq!(a.norm_genes, b.norm_genes, "{what}: norm genes");
    assert_eq!(a.scaler, b.scaler, "{what}: scaler");
    match (&a.hvg, &b.hvg) {
        (None, None) => {}
        (Some(h), Some(k)) => {
            assert_eq!(h.highly_variable, k.highly_variable, "{what}: selected genes");
            assert!(
                same_f64(&h.means, &k.means)
                    && same_f64(&h.dispersions, &k.dispersions)
                    && same_f64(&h.dispersions_norm, &k.dispersions_norm),
                "{what}: HVG statistics"
            );
        }
        _ => panic!("{what}: one selected genes, the other did not"),
    }
}

fn check(ds: &Dataset, cfg: &PreprocessConfig, keep_counts: bool, what: &str) {
    let whole = preprocess::prepare(ds.clone(), cfg, keep_counts).unwrap();
    let names = Names { cells: &ds.cells, genes: &ds.genes, labels: ds.labels.as_deref(), batches: None, source: &ds.source };
    for rows in [700, 2048, 5000] {
        let s = prepare_streamed(&mut InMemoryRows { x: &ds.x, rows }, &names, cfg, keep_counts).unwrap();
        assert_same(&whole, &s, &format!("{what}, blocks of {rows} rows"));
    }
    assert!(whole.n_genes() < ds.n_genes(), "{what}: the selection keeps fewer genes (the case streaming is for)");
}

#[test]
fn streamed_preprocessing_equals_the_in_memory_result() {
    let ds = counts(4500, 1200, false);
    for r in [Recipe::Scanpy, Recipe::Maskclass, Recipe::Sanity] {
        let cfg = PreprocessConfig { n_top_genes: 300, ..PreprocessConfig::recipe(r) };
        check(&ds, &cfg, false, &format!("{r:?}"));
    }
    for fl in [HvgFlavor::Seurat, HvgFlavor::CellRanger, HvgFlavor::SeuratV3, HvgFlavor::Trend, HvgFlavor::Variance] {
        let cfg = PreprocessConfig {
            hvg_flavor: Some(fl),
            n_top_genes: 250,
            min_cells_per_gene: 3,
            min_genes_per_cell: 20,
            ..Default::default()
        };
        check(&ds, &cfg, fl == HvgFlavor::SeuratV3, &format!("{fl:?}"));
    }
    let logs = PreprocessConfig { log_base: Some(2.0), n_top_genes: 200, ..Default::default() };
    check(&ds, &logs, true, "seurat on log2");
    let dca = PreprocessConfig { n_top_genes: 400, ..PreprocessConfig::recipe(Recipe::Dca) };
    check(&counts(2500, 900, true), &dca, true, "dca, fractional counts");
}

#[test]
fn streaming_refuses_what_it_cannot_reproduce() {
    let ds = counts(300, 200, false);
    let cfg = PreprocessConfig::recipe(Recipe::Scrae);
    assert!(!streamable(&cfg));
    let names = Names { cells: &ds.cells, genes: &ds.genes, labels: None, batches: None, source: &ds.source };
    let e = prepare_streamed(&mut InMemoryRows { x: &ds.x, rows: 100 }, &names, &cfg, false).unwrap_err();
    assert!(e.to_string().contains("exclude_highly_expressed"), "{e}");
    // A negative value is reported with its cell and gene, as the whole-matrix check does.
    let mut bad = ds.clone();
    bad.x.data[500] = -1.0;
    let e = prepare_streamed(&mut InMemoryRows { x: &bad.x, rows: 64 }, &names, &PreprocessConfig::default(), false).unwrap_err();
    assert_eq!(e.to_string(), bad.validate().unwrap_err().to_string());
}
