//! Arithmetic on embeddings held row-major (cells x dims): a member's block standardised
//! and placed beside the others, as the consensus builds its embedding in a run
//! (`pipeline::ensemble`) and again when a saved consensus embeds new cells
//! (`store::apply`). A leaf: one definition for both, so that the two agree bit for bit.

/// `part` (cells x `d`, row-major) centred and divided by `standard` (centre, scale),
/// written to columns `at..at + d` of `out` (cells x `dims`, row-major): the consensus
/// embedding is every member's block side by side. The one definition a run and a saved
/// consensus share, so that a saved consensus gives the
/// run's cells the run's embedding bit for bit.
pub fn place_block(out: &mut [f32], dims: usize, at: usize, part: &[f32], d: usize, (centre, scale): (&[f32], f32)) {
    if d == 0 {
        return;
    }
    for (row, p) in out.chunks_mut(dims).zip(part.chunks(d)) {
        for ((o, v), c) in row[at..at + d].iter_mut().zip(p).zip(centre) {
            *o = (v - c) / scale;
        }
    }
}

/// The centre (column means) of `e` (`n` x `d`, row-major) and the root of its centred
/// rows' mean squared norm (1 for a constant embedding, which then stays zero).
pub fn standard_of(e: &[f32], d: usize) -> (Vec<f32>, f32) {
    let n = (e.len() / d.max(1)).max(1);
    let mut sum = vec![0f64; d];
    for row in e.chunks(d.max(1)) {
        for (s, v) in sum.iter_mut().zip(row) {
            *s += *v as f64;
        }
    }
    let centre: Vec<f32> = sum.iter().map(|s| (s / n as f64) as f32).collect();
    let ss: f64 = e.chunks(d.max(1)).map(|row| row.iter().zip(&centre).map(|(v, c)| ((v - c) as f64).powi(2)).sum::<f64>()).sum();
    let ms = ss / n as f64;
    (centre, if ms > 0.0 { ms.sqrt() as f32 } else { 1.0 })
}
