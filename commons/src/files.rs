//! Files a service reads and keeps: read safely, written atomically.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Reads the file at `path`: a regular file (a symbolic link to one, as
/// Kubernetes mounts a ConfigMap, is followed) of at most `limit` bytes.
/// The open does not wait (a FIFO is refused, not waited on), the file's
/// type is checked on the opened file, and at most one byte more than the
/// limit is read. A missing file is `ErrorKind::NotFound`; the other
/// errors say why in their message.
pub fn read_regular(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() {
            "a character device"
        } else if kind.is_block_device() {
            "a block device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a file"
        };
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("it is {what}, not a regular file"),
        ));
    }
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!("it is larger than the limit of {limit} bytes"),
        ));
    }
    Ok(bytes)
}

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

/// A writer that takes at most `limit` bytes: a write past it fails with
/// `ErrorKind::FileTooLarge`, so that a file is never written larger than
/// [`read_regular`] reads it back.
#[derive(Debug)]
pub struct Capped<W> {
    inner: W,
    limit: u64,
    left: u64,
}

impl<W: std::io::Write> Capped<W> {
    /// Writes through `inner`, up to `limit` bytes.
    pub fn new(inner: W, limit: u64) -> Self {
        Capped {
            inner,
            limit,
            left: limit,
        }
    }
}

impl<W: std::io::Write> std::io::Write for Capped<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() as u64 > self.left {
            return Err(std::io::Error::new(
                std::io::ErrorKind::FileTooLarge,
                format!(
                    "it would be larger than the limit of {} bytes it is read back up to",
                    self.limit
                ),
            ));
        }
        let written = self.inner.write(buf)?;
        self.left -= written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_capped_writer_takes_up_to_its_limit() {
        let mut out = Vec::new();
        let mut capped = Capped::new(&mut out, 5);
        capped.write_all(b"abc").unwrap();
        capped.write_all(b"de").unwrap();
        let error = capped.write_all(b"f").unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::FileTooLarge);
        assert!(error.to_string().contains("limit of 5 bytes"), "{error}");
        assert_eq!(out, b"abcde");
    }

    #[test]
    fn a_write_past_the_cap_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, "old").unwrap();
        let error = write_atomically(&path, ".state.", |out| {
            Capped::new(out, 4).write_all(b"too long")
        })
        .unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::FileTooLarge);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(read_regular(&path, 3).unwrap(), b"old");
        assert_eq!(
            read_regular(&path, 2).unwrap_err().kind(),
            std::io::ErrorKind::FileTooLarge
        );
    }
}
