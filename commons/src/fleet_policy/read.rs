//! Reading the fleet policy file safely: regular files only (a symbolic
//! link to one is followed), at most [`MAX_BYTES`], an open that never
//! waits on a FIFO.

use crate::config::ConfigError;
use std::path::Path;

/// Largest policy file read: 4 MiB.
pub const MAX_BYTES: u64 = 4 * 1024 * 1024;

/// Reads the policy file at `path`: a regular file (a symbolic link to
/// one, as Kubernetes mounts a ConfigMap, is followed) of at most
/// [`MAX_BYTES`]. The open does not wait (a FIFO is refused, not waited
/// on), the file's type is checked on the opened file, and at most one
/// byte more than the limit is read. Errors name the file and say why.
pub fn read(path: &Path) -> Result<Vec<u8>, ConfigError> {
    read_at_most(path, MAX_BYTES)
}

fn read_at_most(path: &Path, limit: u64) -> Result<Vec<u8>, ConfigError> {
    crate::files::read_regular(path, limit).map_err(|e| ConfigError::Unreadable {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(path: &Path) -> String {
        read(path).unwrap_err().to_string()
    }

    #[test]
    fn only_regular_files_within_the_limit_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("policy.toml");
        std::fs::write(&file, "[groups.a]\n").unwrap();
        assert_eq!(read(&file).unwrap(), b"[groups.a]\n");
        // A symbolic link to a regular file is followed (ConfigMaps).
        let link = dir.path().join("link.toml");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(read(&link).unwrap(), b"[groups.a]\n");

        let missing = dir.path().join("missing.toml");
        let error = refused(&missing);
        assert!(
            error.contains("missing.toml") && error.contains("No such file or directory"),
            "{error}"
        );
        let error = refused(dir.path());
        assert!(error.contains("it is a directory"), "{error}");

        // A FIFO with no writer: refused at once, not waited on.
        let fifo = dir.path().join("fifo.toml");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        let error = refused(&fifo);
        assert!(error.contains("fifo.toml: it is a FIFO"), "{error}");

        // A link to an endless device: refused without reading it.
        let zero = dir.path().join("zero.toml");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let error = refused(&zero);
        assert!(error.contains("it is a character device"), "{error}");

        // At most one byte over the limit is read.
        std::fs::write(&file, vec![b'#'; 11]).unwrap();
        assert_eq!(read_at_most(&file, 11).unwrap().len(), 11);
        let error = read_at_most(&file, 10).unwrap_err().to_string();
        assert!(
            error.contains("larger than the limit of 10 bytes"),
            "{error}"
        );
    }
}
