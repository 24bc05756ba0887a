//! The simulator: the same counts for a seed whatever the thread count, true counts
//! optional without changing the observed ones, memory refused before drawing.

use scdeep_core::simulate::{simulate, SimParams};

fn params() -> SimParams {
    // more cells than one parallel block (2048), so blocks run on several threads
    SimParams { n_cells: 5000, n_genes: 300, group_prob: vec![0.5, 0.3, 0.2], seed: 7, ..Default::default() }
}

fn on_threads(n: usize, p: &SimParams) -> scdeep_core::simulate::Simulated {
    rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap().install(|| simulate(p).unwrap())
}

#[test]
fn same_counts_on_one_and_two_threads() {
    let (a, b) = (on_threads(1, &params()), on_threads(2, &params()));
    assert_eq!(a.counts, b.counts);
    assert_eq!(a.true_counts, b.true_counts);
    assert_eq!(a.groups, b.groups);
    let c = on_threads(2, &SimParams { seed: 8, ..params() });
    assert_ne!(a.counts, c.counts, "another seed, other counts");
}

#[test]
fn true_counts_are_optional_and_do_not_change_the_counts() {
    let with = simulate(&params()).unwrap();
    let without = simulate(&SimParams { true_counts: false, ..params() }).unwrap();
    assert!(without.true_counts.is_none());
    assert_eq!(with.counts, without.counts);
    let t = with.true_counts.unwrap();
    assert!(t.data.len() > with.counts.data.len(), "dropout removes counts");
    let share = with.groups.iter().filter(|g| *g == "Group1").count() as f64 / 5000.0;
    assert!((share - 0.5).abs() < 0.05, "group 1 holds {share} of the cells, expected 0.5");
}

#[test]
fn a_simulation_too_big_for_memory_is_refused_before_drawing() {
    let e = simulate(&SimParams { n_cells: 1_000_000_000_000, ..params() }).err().unwrap().to_string();
    assert!(e.contains("1000000000000 cells") && e.contains("GB"), "{e}");
}
