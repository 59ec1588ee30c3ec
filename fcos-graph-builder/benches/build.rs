//! Time to parse a synthetic stream's two documents and build, validate and
//! serialize its eight graphs (four basearches, both schemes), for streams
//! of 1,000, 10,000 and 100,000 releases:
//!
//! ```sh
//! cargo bench -p fcos-graph-builder --bench build
//! ```

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fcos_graph_builder::config::{DocumentSource, StreamSettings};
use std::time::Duration;

fn build(c: &mut Criterion) {
    let stream = StreamSettings {
        oci_repository: None,
        name: "bench".into(),
        basearches: test_support::synthetic::ARCHES.map(String::from).to_vec(),
        release_index: DocumentSource::Static(b""),
        updates: DocumentSource::Static(b""),
    };
    let mut group = c.benchmark_group("build_stream");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    for n in [1_000usize, 10_000, 100_000] {
        let (releases, updates) = test_support::synthetic::stream("bench", n, 0);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                fcos_graph_builder::scraper::build_stream(
                    &stream,
                    releases.as_bytes(),
                    updates.as_bytes(),
                )
                .expect("a synthetic stream is valid")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, build);
criterion_main!(benches);
