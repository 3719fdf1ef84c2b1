//! Prints how well the growth-pattern classifier names a labelled synthetic
//! corpus, at each noise level and over all of them.

use memtrace::classify::corpus::{self, Noise};

/// Series of each pattern at each noise level.
const PER_CLASS: usize = 60;
const SEED: u64 = 0x6d65_6d74_7261_6365;

fn main() {
    for (i, noise) in Noise::ALL.into_iter().enumerate() {
        let seed = SEED + i as u64 + 1;
        let evaluation = corpus::evaluate(&corpus::generate(seed, PER_CLASS, &[noise]));
        println!("noise {noise}\n{evaluation}\n");
    }
    let all = corpus::evaluate(&corpus::generate(SEED, PER_CLASS, &Noise::ALL));
    println!("all noise levels\n{all}");
}
