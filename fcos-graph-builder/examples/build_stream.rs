//! Builds every graph of a synthetic stream of N releases once and prints
//! the time and the peak memory of the process:
//!
//! ```sh
//! cargo run --release -p fcos-graph-builder --example build_stream -- 100000
//! ```

use fcos_graph_builder::config::{DocumentSource, StreamSettings};
use std::time::Instant;

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let (releases, updates) = service_kit::synthetic::stream("bench", n, 0);
    let stream = StreamSettings {
        oci_repository: None,
        name: "bench".into(),
        basearches: service_kit::synthetic::ARCHES.map(String::from).to_vec(),
        release_index: DocumentSource::Static(b""),
        updates: DocumentSource::Static(b""),
    };
    let input_mib = (releases.len() + updates.len()) as f64 / 1_048_576.0;
    let start = Instant::now();
    let built =
        fcos_graph_builder::scraper::build_stream(&stream, releases.as_bytes(), updates.as_bytes())
            .expect("a synthetic stream is valid");
    let elapsed = start.elapsed();
    let edges: usize = built.iter().map(|g| g.edges).sum();
    let bytes: usize = built.iter().map(|g| g.json.len()).sum();
    println!(
        "n={n} input={input_mib:.1}MiB graphs={} edges={edges} output={:.1}MiB time={:.3}s peak_rss={:.0}MiB",
        built.len(),
        bytes as f64 / 1_048_576.0,
        elapsed.as_secs_f64(),
        peak_rss_mib()
    );
}
