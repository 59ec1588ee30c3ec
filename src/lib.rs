//! fcos-cincinnati: the Fedora CoreOS update service as one program. It
//! runs the graph-builder and the policy-engine together (on the embedded
//! sample, or on a configuration), and previews graphs from local files.

pub mod preview;
pub mod sample;
pub mod serve;
