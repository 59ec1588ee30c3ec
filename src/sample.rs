//! The sample data set compiled into the binary (`dist/sample/`, written by
//! `dist/sample/generate.py`): a release index and updates metadata for
//! `stable`, `testing` and `next`.

/// The streams of the sample.
pub const STREAMS: [&str; 3] = ["stable", "testing", "next"];
/// The basearches of the sample.
pub const BASEARCHES: [&str; 4] = ["x86_64", "aarch64", "ppc64le", "s390x"];

/// The sample `(release index, updates metadata)` of `stream`.
pub fn documents(stream: &str) -> Option<(&'static [u8], &'static [u8])> {
    match stream {
        "stable" => Some((
            include_bytes!("../dist/sample/stable/releases.json"),
            include_bytes!("../dist/sample/stable/updates.json"),
        )),
        "testing" => Some((
            include_bytes!("../dist/sample/testing/releases.json"),
            include_bytes!("../dist/sample/testing/updates.json"),
        )),
        "next" => Some((
            include_bytes!("../dist/sample/next/releases.json"),
            include_bytes!("../dist/sample/next/updates.json"),
        )),
        _ => None,
    }
}
