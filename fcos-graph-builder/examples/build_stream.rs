//! Builds every graph of a synthetic stream of N releases once and prints
//! the time and the peak memory of the process:
//!
//! ```sh
//! cargo run --release -p fcos-graph-builder --example build_stream -- 100000
//! ```
//!
//! With `--write DIR`, it also writes the stream's two documents to
//! `DIR/releases.json` and `DIR/updates.json` (the stream is named `bench`),
//! for `bench/startup.sh` to serve through `file://` URLs.

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
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let write_to = args
        .iter()
        .position(|a| a == "--write")
        .and_then(|at| args.get(at + 1));
    let (releases, updates) =
        test_support::synthetic::stream("bench", n, commons::unix_now() - 3600);
    if let Some(dir) = write_to {
        let dir = std::path::Path::new(dir);
        std::fs::create_dir_all(dir).expect("cannot create the output directory");
        std::fs::write(dir.join("releases.json"), &releases).expect("cannot write releases.json");
        std::fs::write(dir.join("updates.json"), &updates).expect("cannot write updates.json");
    }
    let stream = StreamSettings {
        oci_repository: None,
        name: "bench".into(),
        basearches: test_support::synthetic::ARCHES.map(String::from).to_vec(),
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
    let bytes: usize = built.iter().map(|g| g.body.json().len()).sum();
    println!(
        "n={n} input={input_mib:.1}MiB graphs={} edges={edges} output={:.1}MiB time={:.3}s peak_rss={:.0}MiB",
        built.len(),
        bytes as f64 / 1_048_576.0,
        elapsed.as_secs_f64(),
        peak_rss_mib()
    );
}
