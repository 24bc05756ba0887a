//! Seeds: independent, reproducible random streams derived from a run's seed (the
//! trainer's epochs, the models' initialisation, the clustering's restarts all draw
//! from here, so that the same seed gives the same labels).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// SplitMix64: derives independent seeds from (seed, stream).
pub fn mix_seed(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A ChaCha stream for (seed, stream): epochs use 0, 1, ...; initialisation uses INIT_STREAM.
pub fn rng_for(seed: u64, stream: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(mix_seed(seed, stream))
}

pub const INIT_STREAM: u64 = u64::MAX;
