//! Files a service keeps across restarts.

use std::path::Path;

/// Writes a file of a state directory atomically: a new temporary file
/// of a random name (starting with `prefix`) in the same directory,
/// created exclusively so that nothing planted there is followed, written
/// by `write`, synced, then renamed over `path`. On failure the temporary
/// file is removed.
pub fn write_atomically(
    path: &Path,
    prefix: &str,
    write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temporary = tempfile::Builder::new()
        .prefix(prefix)
        .suffix(".tmp")
        .tempfile_in(dir)?;
    {
        let mut out = std::io::BufWriter::new(temporary.as_file_mut());
        write(&mut out)?;
        out.flush()?;
    }
    temporary.as_file().sync_all()?;
    temporary.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}
