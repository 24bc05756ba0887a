//! Graph clustering against its oracles (tests/fixtures/graph.json, written by
//! `scripts/make_fixtures.py graph` with scanpy, leidenalg and igraph).

use scdeep_core::cluster::{self, communities, quality, CommunityParams, Graph, Metric, Quality};
use scdeep_core::metrics;
use serde_json::Value;
use tch::Tensor;

fn fixtures() -> Vec<Value> {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/graph.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn nums(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn scanpy_graph(fx: &Value) -> Graph {
    let n = fx["n"].as_u64().unwrap() as usize;
    let indptr: Vec<usize> = nums(&fx["indptr"]).iter().map(|&v| v as usize).collect();
    let indices: Vec<u32> = nums(&fx["indices"]).iter().map(|&v| v as u32).collect();
    Graph { n, indptr, indices, weights: nums(&fx["data"]) }
}

fn membership(v: &Value) -> Vec<usize> {
    nums(v).iter().map(|&x| x as usize).collect()
}

fn ari(a: &[usize], b: &[usize]) -> f64 {
    metrics::adjusted_rand_index(a, b).unwrap()
}

fn params(q: Quality, resolution: f64, refine: bool) -> CommunityParams {
    CommunityParams { quality: q, resolution, refine, theta: 0.01, max_iterations: 0, seed: 0 }
}

#[test]
fn umap_connectivities_match_scanpy() {
    for fx in fixtures() {
        let (n, d) = (fx["n"].as_u64().unwrap() as i64, fx["d"].as_u64().unwrap() as i64);
        let x: Vec<f32> = nums(&fx["x"]).iter().map(|&v| v as f32).collect();
        let x = Tensor::from_slice(&x).view([n, d]);
        let knn = cluster::knn_exact(&x, 15, Metric::Euclidean, 100).unwrap();
        let ours = cluster::umap_connectivities(&knn);
        let want = scanpy_graph(&fx);
        let mut worst = 0.0f64;
        let mut pattern_diff = 0usize;
        for i in 0..want.n {
            let w: std::collections::HashMap<usize, f64> = want.neighbors(i).collect();
            let o: std::collections::HashMap<usize, f64> = ours.neighbors(i).collect();
            for (j, wv) in &w {
                match o.get(j) {
                    Some(ov) => worst = worst.max((ov - wv).abs()),
                    None => pattern_diff += 1,
                }
            }
            pattern_diff += o.keys().filter(|j| !w.contains_key(j)).count();
        }
        let name = fx["name"].as_str().unwrap();
        assert_eq!(pattern_diff, 0, "{name}: {pattern_diff} edges differ from scanpy's graph");
        assert!(worst < 1e-4, "{name}: largest weight difference {worst}");
    }
}

#[test]
fn leiden_reaches_leidenalg_quality() {
    for fx in fixtures() {
        let name = fx["name"].as_str().unwrap();
        let g = scanpy_graph(&fx);
        for res in ["0.5", "1.0"] {
            let r: f64 = res.parse().unwrap();
            let theirs = membership(&fx["leiden"][res]["membership"]);
            let q_theirs = fx["leiden"][res]["modularity"].as_f64().unwrap();
            // our quality function agrees with igraph's modularity
            let q_check = quality(&g, &theirs, Quality::Modularity, r);
            assert!((q_check - q_theirs).abs() < 1e-9, "{name}: modularity {q_check} vs igraph {q_theirs}");
            let (ours, q) = communities(&g, &params(Quality::Modularity, r, true));
            let agree = ari(&ours, &theirs);
            eprintln!(
                "{name} resolution {res}: leiden Q {q:.5} vs leidenalg {q_theirs:.5} ({:.2} %), ARI between partitions {agree:.3}",
                100.0 * q / q_theirs
            );
            assert!(q >= 0.99 * q_theirs, "{name} res {res}: modularity {q} < 99 % of leidenalg's {q_theirs}");
            assert!((q - quality(&g, &ours, Quality::Modularity, r)).abs() < 1e-9);
        }
        // Louvain vs igraph's multilevel
        let q_louv = fx["louvain"]["modularity"].as_f64().unwrap();
        let (_, q) = communities(&g, &params(Quality::Modularity, 1.0, false));
        eprintln!("{name}: louvain Q {q:.5} vs igraph multilevel {q_louv:.5}");
        assert!(q >= 0.99 * q_louv, "{name}: louvain modularity {q} < 99 % of igraph's {q_louv}");
        // CPM vs leidenalg's CPMVertexPartition
        let cpm_r = fx["cpm"]["resolution"].as_f64().unwrap();
        let theirs = membership(&fx["cpm"]["membership"]);
        // leidenalg reports twice Σ_c [e_c − γ n_c(n_c−1)/2] for undirected graphs
        let q_theirs = fx["cpm"]["quality"].as_f64().unwrap() / 2.0;
        assert!((quality(&g, &theirs, Quality::Cpm, cpm_r) - q_theirs).abs() < 1e-6 * q_theirs.abs());
        let (_, q) = communities(&g, &params(Quality::Cpm, cpm_r, true));
        eprintln!("{name}: CPM quality {q:.3} vs leidenalg {q_theirs:.3}");
        assert!(q >= 0.99 * q_theirs, "{name}: CPM {q} < 99 % of leidenalg's {q_theirs}");
    }
}

#[test]
fn leiden_is_seeded() {
    let fx = &fixtures()[2];
    let g = scanpy_graph(fx);
    let a = communities(&g, &params(Quality::Modularity, 1.0, true));
    let b = communities(&g, &params(Quality::Modularity, 1.0, true));
    assert_eq!(a, b);
}

#[test]
fn finds_twelve_groups_without_k() {
    use scdeep_core::simulate::{simulate, SimParams};
    let p = SimParams { n_cells: 2400, n_genes: 2000, group_prob: vec![1.0 / 12.0; 12], de_prob: 0.2, seed: 11, ..Default::default() };
    let s = simulate(&p).unwrap();
    let ds = scdeep_core::Dataset { x: s.counts, cells: s.cells, genes: s.genes, labels: None, batches: None, source: "sim".into() };
    let cfg = scdeep_core::RunConfig::from_json(&serde_json::json!({"method": "pca", "device": "cpu", "cluster": {"algorithm": "leiden"}}))
        .unwrap();
    let r = scdeep_core::pipeline::run(&ds, &cfg, &mut scdeep_core::progress::Silent).unwrap();
    let k = r.labels.iter().collect::<std::collections::BTreeSet<_>>().len();
    let pred: Vec<usize> = r.labels.iter().map(|&l| l as usize).collect();
    let a = ari(&metrics::encode(&s.groups).0, &pred);
    eprintln!("12 simulated groups, k unknown: {k} clusters, ARI {a:.3} ({})", r.clustering);
    assert!((11..=13).contains(&k), "{k} clusters for 12 groups");
    assert!(a >= 0.9, "ARI {a}");
    // picking the resolution by silhouette prefers the partition that matches the groups
    let emb = Tensor::from_slice(&r.embedding).view([r.cells.len() as i64, r.dims as i64]);
    let c = cluster::ClusterConfig {
        algorithm: cluster::Algorithm::Leiden,
        resolution_choice: cluster::ResolutionChoice::Silhouette,
        resolutions: vec![0.02, 1.0, 8.0],
        ..Default::default()
    };
    let s_pick = cluster::run(&emb, &c, None, 0, &mut scdeep_core::progress::Silent).unwrap();
    eprintln!("silhouette choice: {}", s_pick.info);
    assert_eq!(s_pick.info["resolution"], 1.0, "{}", s_pick.info);
    assert_eq!(s_pick.info["resolutions_tried"], 3);
}

#[test]
fn graph_bad_input() {
    let x = Tensor::randn([20, 3], (tch::Kind::Float, tch::Device::Cpu));
    for nn in [20, 25] {
        let cfg = cluster::ClusterConfig { algorithm: cluster::Algorithm::Leiden, n_neighbors: nn, ..Default::default() };
        let e = cluster::run(&x, &cfg, None, 0, &mut scdeep_core::progress::Silent).unwrap_err().to_string();
        assert!(e.contains("cluster.n_neighbors") && e.contains(&nn.to_string()) && e.contains("(20)"), "{e}");
    }
    // two far-apart blobs with k = 1 cannot be one graph cluster
    let blob = Tensor::randn([30, 3], (tch::Kind::Float, tch::Device::Cpu));
    let x2 = Tensor::cat(&[&blob, &(&blob + 1000.0)], 0);
    let cfg = cluster::ClusterConfig { algorithm: cluster::Algorithm::Leiden, n_neighbors: 5, ..Default::default() };
    let e = cluster::run(&x2, &cfg, Some(1), 0, &mut scdeep_core::progress::Silent).unwrap_err().to_string();
    assert!(e.contains("disconnected") && e.contains("n_neighbors"), "{e}");
    // NaN in the embedding
    let mut bad = Vec::<f32>::try_from(&x.view([-1])).unwrap();
    bad[7] = f32::NAN;
    let xb = Tensor::from_slice(&bad).view([20, 3]);
    let cfg = cluster::ClusterConfig { algorithm: cluster::Algorithm::Leiden, n_neighbors: 5, ..Default::default() };
    let e = cluster::run(&xb, &cfg, None, 0, &mut scdeep_core::progress::Silent).unwrap_err().to_string();
    assert!(e.contains("NaN"), "{e}");
}

#[test]
fn approximate_knn_recall_against_exact() {
    // 6000 points around 30 overlapping centres in 30 dimensions: hard enough that
    // HNSW misses some neighbours (recall 0.88 with ef 16)
    let mut rng = scdeep_core::seed::rng_for(5, 0);
    let centers = scdeep_core::train::random::normal(&mut rng, &[30, 30], tch::Device::Cpu);
    let which = Tensor::from_slice(&(0..6000i64).map(|i| i % 30).collect::<Vec<_>>());
    let x = centers.index_select(0, &which) + scdeep_core::train::random::normal(&mut rng, &[6000, 30], tch::Device::Cpu);
    let exact = cluster::knn_exact(&x, 15, Metric::Euclidean, 1024).unwrap();
    let ef = cluster::ClusterConfig::default().hnsw_ef;
    let approx = cluster::knn_hnsw(&x, 15, Metric::Euclidean, ef, 0, 1).unwrap();
    let r = cluster::recall(&exact, &approx);
    eprintln!("HNSW recall@14 vs exact on 6000 x 30: {r:.4}");
    assert!(r >= 0.95, "recall {r}");
    let again = cluster::knn_hnsw(&x, 15, Metric::Euclidean, ef, 0, 1).unwrap();
    assert_eq!(approx.indices, again.indices, "one-thread HNSW is deterministic");
    let c = cluster::ClusterConfig::default();
    let ivf = cluster::knn_ivf(&x, 15, Metric::Euclidean, c.ivf_nlist, c.ivf_nprobe, c.ivf_search, c.knn_refine, 0).unwrap();
    let r = cluster::recall(&exact, &ivf);
    eprintln!("IVF recall@14 vs exact on 6000 x 30 (nprobe {}): {r:.4}", c.ivf_nprobe);
    assert!(r >= 0.95, "IVF recall {r}");
    assert!((0..6000).all(|i| ivf.indices[i * 15] == i as u32), "each cell is its own first neighbour");
    let one = cluster::knn_ivf(&x, 15, Metric::Euclidean, 0, 1, 0, 0, 0).unwrap();
    assert!(cluster::recall(&exact, &one) < r, "probing one list should lose neighbours");
    let coarse = cluster::knn_ivf(&x, 15, Metric::Euclidean, 0, 2, 0, 0, 0).unwrap();
    let rc = cluster::recall(&exact, &coarse);
    // the estimate on a sample of cells (what a run reports) follows the true recall
    let est = cluster::graph::sampled_recall(&x, &coarse, Metric::Euclidean, 1000, 0).unwrap();
    assert!((est - rc).abs() < 0.03, "recall {rc:.4}, estimated on 1000 cells {est:.4}");
    // the recall a breadth would have on sampled cells, known before searching, is what
    // the search then has on them
    let index = cluster::graph::IvfIndex::build(&x, 15, Metric::Euclidean, 0, 4, 0).unwrap();
    let (pick, nb) = cluster::graph::exact_neighbours_of_sample(&x, 15, Metric::Euclidean, 500, 3).unwrap();
    let mut last = 0.0;
    for np in [1, 2, 4] {
        let pred = index.recall_on(&pick, &nb, np, 0).unwrap();
        let got = cluster::graph::sampled_recall(&x, &index.search(np, 0).unwrap(), Metric::Euclidean, 500, 3).unwrap();
        eprintln!("{np} lists per cell: recall predicted {pred:.4}, measured {got:.4}");
        assert!((pred - got).abs() < 1e-3, "{np} lists: predicted {pred}, measured {got}");
        assert!(pred > last, "{np} lists: recall {pred} not above {last}");
        last = pred;
    }
    // refinement by neighbours of neighbours only adds neighbours
    let mut refined = coarse.clone();
    cluster::graph::refine_by_neighbours(&x, &mut refined, Metric::Euclidean).unwrap();
    let rr = cluster::recall(&exact, &refined);
    eprintln!("IVF with two lists: recall {rc:.4}, after one refinement {rr:.4}");
    assert!(rr > rc, "refinement {rr} <= {rc}");
    assert!((0..6000).all(|i| refined.indices[i * 15] == i as u32), "each cell is still its own first neighbour");
}

/// 50 000 points: the default approximate search (what `auto` uses above 20 000 cells)
/// keeps n_neighbors and finds >= 95 % of the exact neighbours (measured on 2000 cells).
/// `n` points in 30 dimensions around 40 standard-normal centres, unit noise.
fn gaussian_groups(seed: u64, n: i64) -> Tensor {
    let mut rng = scdeep_core::seed::rng_for(seed, 0);
    let centers = scdeep_core::train::random::normal(&mut rng, &[40, 30], tch::Device::Cpu);
    let which = Tensor::from_slice(&(0..n).map(|i| (i * 7919) % 40).collect::<Vec<_>>());
    centers.index_select(0, &which) + scdeep_core::train::random::normal(&mut rng, &[n, 30], tch::Device::Cpu)
}

#[test]
fn default_knn_recall_on_50k_points() {
    let x = gaussian_groups(9, 50_000);
    let c = cluster::ClusterConfig::default();
    assert!(50_000 > c.knn_exact_max_cells, "auto uses the approximate search here");
    let knn = cluster::knn_ivf(&x, c.n_neighbors, Metric::Euclidean, c.ivf_nlist, c.ivf_nprobe, c.ivf_search, c.knn_refine, 0).unwrap();
    assert_eq!(knn.k, c.n_neighbors);
    for i in 0..50_000 {
        let row: std::collections::HashSet<u32> = knn.indices[i * knn.k..(i + 1) * knn.k].iter().copied().collect();
        assert_eq!(row.len(), knn.k, "cell {i}: {} distinct neighbours", row.len());
    }
    let r = cluster::graph::sampled_recall(&x, &knn, Metric::Euclidean, 2000, 1).unwrap();
    eprintln!("default approximate kNN recall on 50 000 x 30, 2000 cells checked: {r:.4}");
    assert!(r >= 0.95, "recall {r}");
    // 400 lists: above IVF_FLAT_MAX_LISTS the centres are trained in two levels
    const { assert!(400 > cluster::graph::IVF_FLAT_MAX_LISTS) };
    let two = cluster::knn_ivf(&x, c.n_neighbors, Metric::Euclidean, 400, c.ivf_nprobe, c.ivf_search, 0, 0).unwrap();
    let r2 = cluster::graph::sampled_recall(&x, &two, Metric::Euclidean, 2000, 1).unwrap();
    eprintln!("with 400 lists (two-level centres): {r2:.4}");
    assert!(r2 >= 0.95, "recall {r2}");
}

/// The bisection search for k clusters (match_k) hits k at least as often as scMAE's grid
/// of 125 resolutions, in at most 12 Leiden runs, on one graph per data set.
#[test]
fn resolution_search_hits_k_at_least_as_often_as_the_grid() {
    let (mut hits_bisect, mut hits_grid, mut cases) = (0, 0, 0);
    for (groups, seed) in [(5i64, 1u64), (8, 2), (12, 3)] {
        let mut rng = scdeep_core::seed::rng_for(seed, 0);
        let centers = scdeep_core::train::random::normal(&mut rng, &[groups, 20], tch::Device::Cpu) * 1.5;
        // unequal group sizes, as in real data
        let which: Vec<i64> = (0..3000i64).map(|i| ((i * i) % (groups * groups)) % groups).collect();
        let x = centers.index_select(0, &Tensor::from_slice(&which))
            + scdeep_core::train::random::normal(&mut rng, &[3000, 20], tch::Device::Cpu);
        for k in [groups as usize - 2, groups as usize, groups as usize + 3] {
            cases += 1;
            let run = |choice| {
                let cfg = cluster::ClusterConfig { algorithm: cluster::Algorithm::Leiden, resolution_choice: choice, ..Default::default() };
                let c = cluster::run(&x, &cfg, Some(k), 0, &mut scdeep_core::progress::Silent).unwrap();
                (c.info["n_clusters"].as_u64().unwrap() as usize, c.info["resolutions_tried"].as_u64().unwrap() as usize)
            };
            let (nb, runs) = run(cluster::ResolutionChoice::MatchK);
            let (ng, grid_runs) = run(cluster::ResolutionChoice::Grid);
            eprintln!("{groups} groups, k = {k}: bisection {nb} clusters in {runs} runs, grid {ng} in {grid_runs}");
            assert!(runs <= cluster::MAX_SEARCH_RUNS);
            hits_bisect += (nb == k) as usize;
            hits_grid += (ng == k) as usize;
            if k == groups as usize {
                assert_eq!(nb, k, "the true number of groups is found");
            }
        }
    }
    eprintln!("hits: bisection {hits_bisect} / {cases}, grid {hits_grid} / {cases}");
    assert!(hits_bisect >= hits_grid);
}

#[test]
fn snn_is_the_jaccard_index_of_neighbourhoods() {
    // 4 cells, k = 2 (the cell and its nearest): N0 = {0,1}, N1 = {1,0}, N2 = {2,3}, N3 = {3,2}
    let knn = cluster::Knn { n: 4, k: 2, indices: vec![0, 1, 1, 0, 2, 3, 3, 2], distances: vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0] };
    let g = cluster::snn(&knn, 1.0 / 15.0);
    let w: Vec<(usize, f64)> = g.neighbors(0).collect();
    assert_eq!(w, vec![(1, 1.0)], "identical neighbourhoods: Jaccard 1");
    assert_eq!(g.components().1, 2);
    // N0 = {0,1,2}, N1 = {1,0,3}, N2 = {2,0,3}, N3 = {3,1,2}: every pair shares 2 of 3,
    // Jaccard 2 / (6 - 2) = 0.5, also 0-3 which are not each other's neighbours
    let knn = cluster::Knn { n: 4, k: 3, indices: vec![0, 1, 2, 1, 0, 3, 2, 0, 3, 3, 1, 2], distances: vec![0.0; 12] };
    let g = cluster::snn(&knn, 0.25);
    let w: std::collections::HashMap<usize, f64> = g.neighbors(0).collect();
    assert_eq!(w, [(1, 0.5), (2, 0.5), (3, 0.5)].into_iter().collect());
    assert_eq!(cluster::snn(&knn, 0.6).n_edges(), 0, "pruned below 0.6");
}

/// A search that misses neighbours (one probe) is repeated more broadly until the measured
/// recall reaches knn_min_recall, and that is reported; with the floor at 0 it is not.
#[test]
fn low_recall_is_searched_again_up_to_the_floor() {
    let x = gaussian_groups(4, 30_000);
    let c = cluster::ClusterConfig { knn: cluster::KnnMethod::Ivf, ivf_nprobe: 1, ivf_search: 1, knn_max_retries: 3, ..Default::default() };
    let (_, off) =
        cluster::build_graph(&x, &cluster::ClusterConfig { knn_min_recall: 0.0, ..c.clone() }, 15, 0, &mut scdeep_core::progress::Silent)
            .unwrap();
    let base = off["recall"].as_f64().unwrap();
    assert!(base < c.knn_min_recall, "the one-probe search should miss neighbours here (recall {base})");
    assert!(off.get("breadth_scale").is_none());
    let (_, on) = cluster::build_graph(&x, &c, 15, 0, &mut scdeep_core::progress::Silent).unwrap();
    let r = on["recall"].as_f64().unwrap();
    eprintln!("one probe: recall {base:.3}; searched {}x as broadly: {r:.3}", on["breadth_scale"]);
    assert!(on["breadth_scale"].as_u64().unwrap() >= 2);
    assert!(r >= c.knn_min_recall, "recall after the broader search {r}");
}

/// NN-descent keeps n_neighbors distinct neighbours, the cell first, finds most exact
/// neighbours from a poor start, and gives the same graph on one thread and two.
#[test]
fn nn_descent_improves_a_poor_graph_the_same_on_any_thread_count() {
    let x = gaussian_groups(6, 20_000);
    let exact = cluster::knn_exact(&x, 15, Metric::Euclidean, 1024).unwrap();
    let init = cluster::knn_ivf(&x, 31, Metric::Euclidean, 0, 1, 1, 0, 0).unwrap();
    let mut start = init.clone();
    start.k = 15;
    start.indices = (0..20_000).flat_map(|i| init.indices[i * 31..i * 31 + 15].to_vec()).collect();
    let r0 = cluster::recall(&exact, &start);
    let p = cluster::descent::DescentParams {
        max_rounds: 20,
        max_candidates: 30,
        delta: cluster::descent::DELTA,
        width: 30,
        seed: 3,
        threads: 1,
    };
    let (one, rep) = cluster::descent::knn_descent(&x, 15, init.clone(), Metric::Euclidean, &p).unwrap();
    let r = cluster::recall(&exact, &one);
    eprintln!("NN-descent on 20 000 x 30: recall {r0:.4} -> {r:.4} in {} rounds {:?}", rep.updates.len(), rep.updates);
    assert!(r >= 0.95 && r > r0 + 0.05, "recall {r0} -> {r}");
    for i in 0..20_000 {
        let row = &one.indices[i * 15..(i + 1) * 15];
        assert_eq!(row[0], i as u32, "cell {i} first");
        assert_eq!(row.iter().collect::<std::collections::HashSet<_>>().len(), 15, "cell {i}: duplicate neighbours");
        assert!(one.distances[i * 15..(i + 1) * 15].windows(2).all(|w| w[0] <= w[1]), "cell {i}: distances not sorted");
    }
    let (two, _) =
        cluster::descent::knn_descent(&x, 15, init, Metric::Euclidean, &cluster::descent::DescentParams { threads: 2, ..p }).unwrap();
    assert_eq!(one.indices, two.indices, "one thread and two give the same graph");
}

/// `auto` turns to NN-descent when no breadth of the inverted file reaches the floor (here:
/// one list per cell and no broadening allowed), and says so in clustering.knn.
#[test]
fn auto_uses_nn_descent_when_the_inverted_file_cannot_reach_the_floor() {
    let x = gaussian_groups(4, 30_000);
    let c = cluster::ClusterConfig { ivf_nprobe: 1, ivf_search: 1, knn_max_retries: 0, ..Default::default() };
    let (_, info) = cluster::build_graph(&x, &c, 15, 0, &mut scdeep_core::progress::Silent).unwrap();
    eprintln!("{info}");
    assert_eq!(info["method"], "nn_descent");
    assert_eq!(info["n_neighbors"], 15);
    assert!(info["recall"].as_f64().unwrap() >= c.knn_min_recall, "{info}");
    let (_, ivf) = cluster::build_graph(
        &x,
        &cluster::ClusterConfig { knn: cluster::KnnMethod::Ivf, ..c.clone() },
        15,
        0,
        &mut scdeep_core::progress::Silent,
    )
    .unwrap();
    assert_eq!(ivf["method"], "ivf", "asked for the inverted file, it is kept");
    assert!(ivf["recall"].as_f64().unwrap() < c.knn_min_recall);
}

/// build_graph refines the inverted file's cosine graph on unit rows, as knn_ivf does
/// (refining on the raw embedding would rank and weigh by Euclidean distance).
#[test]
fn refinement_in_build_graph_uses_the_metric_of_the_search() {
    let x = gaussian_groups(2, 25_000) + 3.0;
    let c = cluster::ClusterConfig {
        knn: cluster::KnnMethod::Ivf,
        metric: Metric::Cosine,
        knn_refine: 1,
        knn_min_recall: 0.0,
        ..Default::default()
    };
    let (g, _) = cluster::build_graph(&x, &c, 15, 0, &mut scdeep_core::progress::Silent).unwrap();
    let knn = cluster::knn_ivf(&x, 15, Metric::Cosine, c.ivf_nlist, c.ivf_nprobe, c.ivf_search, 1, 0).unwrap();
    assert!(g == cluster::umap_connectivities(&knn), "build_graph's refined cosine graph differs from knn_ivf's");
}

/// `cluster.algorithm = consensus` on 8 overlapping groups of unequal size: the
/// consensus of 20 single-start K-means runs finds k clusters, is seeded (same seed, same
/// labels), reports each run's agreement with it, and recovers the groups at least as well
/// as the median single-start run does.
#[test]
fn consensus_of_kmeans_runs_on_simulated_groups() {
    let mut rng = scdeep_core::seed::rng_for(4, 0);
    let centers = scdeep_core::train::random::normal(&mut rng, &[8, 10], tch::Device::Cpu) * 1.2;
    let truth: Vec<usize> = (0..2000usize).map(|i| ((i * i) % 64) % 8).collect();
    let which = Tensor::from_slice(&truth.iter().map(|&g| g as i64).collect::<Vec<_>>());
    let x = centers.index_select(0, &which) + scdeep_core::train::random::normal(&mut rng, &[2000, 10], tch::Device::Cpu);
    let cfg = cluster::ClusterConfig { algorithm: cluster::Algorithm::Consensus, ..Default::default() };
    let mut quiet = scdeep_core::progress::Silent;
    let a = cluster::run(&x, &cfg, Some(8), 11, &mut quiet).unwrap();
    let b = cluster::run(&x, &cfg, Some(8), 11, &mut quiet).unwrap();
    assert_eq!(a.labels, b.labels, "same seed, same labels");
    let labels: Vec<usize> = a.labels.iter().map(|&l| l as usize).collect();
    assert_eq!(labels.iter().max().unwrap() + 1, 8);
    assert_eq!(a.info["algorithm"], "consensus");
    assert!(["graph", "kmeans"].contains(&a.info["picked"].as_str().unwrap()), "{}", a.info);
    let agreement = a.info["run_agreement_ari"].as_array().unwrap();
    assert_eq!(agreement.len(), cfg.consensus_runs);
    let consensus = ari(&truth, &labels);
    let mut single: Vec<f64> = (0..cfg.consensus_runs as u64)
        .map(|r| {
            let p = cluster::KMeansParams { k: 8, n_init: 1, max_iter: 300, tol: 1e-4, seed: scdeep_core::seed::mix_seed(11, r) };
            let l: Vec<usize> = cluster::kmeans(&x, &p).unwrap().labels.iter().map(|&l| l as usize).collect();
            ari(&truth, &l)
        })
        .collect();
    single.sort_by(f64::total_cmp);
    let median = single[single.len() / 2];
    eprintln!(
        "consensus ARI {consensus:.4}; single-start K-means runs {:.4} .. {:.4}, median {median:.4}",
        single[0],
        single[single.len() - 1]
    );
    assert!(consensus >= median, "consensus {consensus} below the median run {median}");
    // without k it says what it needs
    let e = cluster::run(&x, &cfg, None, 11, &mut quiet).unwrap_err().to_string();
    assert!(e.contains("cluster.n_clusters") && e.contains("consensus"), "{e}");
}
