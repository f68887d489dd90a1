//! Benchmark binary (`scripts/bench`): measures a node and prints figures for BENCHMARKS.md.

fn main() {}
