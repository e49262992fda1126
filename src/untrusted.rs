//! Reading what an agent wrote: the only place the host opens paths an agent can write
//! (its outbox, its private git state, its worktree's lock files). Every entry is opened
//! relative to a directory handle with `O_NOFOLLOW|O_NONBLOCK`, must be a regular file
//! (no symlink, FIFO, device or socket is ever followed or opened for reading) and is
//! read through a bounded reader. Names come from the host or are validated by callers.

use std::ffi::CString;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Why an agent's file was not read.
#[derive(Debug)]
pub enum Refused {
    Missing,
    /// A symlink, FIFO, device, socket or directory where a file was expected.
    NotRegular(&'static str),
    TooLarge {
        size: u64,
        limit: u64,
    },
    Io(io::Error),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Missing => write!(f, "missing"),
            Refused::NotRegular(kind) => write!(f, "a {kind}, not a regular file"),
            Refused::TooLarge { size, limit } => {
                write!(f, "{size} bytes, over the {limit}-byte limit")
            }
            Refused::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<io::Error> for Refused {
    fn from(e: io::Error) -> Refused {
        match e.raw_os_error() {
            Some(libc::ENOENT) => Refused::Missing,
            // O_NOFOLLOW on a symlink; O_DIRECTORY on a non-directory.
            Some(libc::ELOOP) => Refused::NotRegular("symlink"),
            Some(libc::ENOTDIR) => Refused::NotRegular("non-directory"),
            _ => Refused::Io(e),
        }
    }
}

fn cstr(name: &str) -> io::Result<CString> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a plain file name"),
        ));
    }
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in name"))
}

fn kind(mode: libc::mode_t) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFREG => "regular file",
        libc::S_IFDIR => "directory",
        libc::S_IFLNK => "symlink",
        libc::S_IFIFO => "FIFO",
        libc::S_IFSOCK => "socket",
        libc::S_IFCHR | libc::S_IFBLK => "device",
        _ => "special file",
    }
}

fn fstat(fd: &OwnedFd) -> io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: fd is open; st is a valid out pointer.
    if unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstat succeeded and filled it.
    Ok(unsafe { st.assume_init() })
}

/// A directory an agent can write into, held open: its entries are looked up relative
/// to this handle, so renaming or replacing a path component cannot redirect the host.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

/// One entry of a directory listing: its name and what it is (not followed).
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub is_file: bool,
    pub is_dir: bool,
}

impl Dir {
    /// Open `path` as a directory. Its last component must not be a symlink; the parents
    /// must be places only the host writes.
    pub fn open(path: &Path) -> Result<Dir, Refused> {
        let c = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| Refused::Io(io::Error::new(io::ErrorKind::InvalidInput, "NUL")))?;
        // SAFETY: c is a valid NUL-terminated path.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error().into());
        }
        Ok(Dir {
            // SAFETY: fd was just opened and is owned here.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn openat(&self, name: &str, flags: libc::c_int) -> Result<OwnedFd, Refused> {
        let c = cstr(name)?;
        // SAFETY: self.fd is an open directory; c is NUL-terminated.
        let fd = unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                flags | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error().into());
        }
        // SAFETY: fd was just opened and is owned here.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// A subdirectory, not followed if it is a symlink.
    pub fn sub(&self, name: &str) -> Result<Dir, Refused> {
        let fd = self.openat(name, libc::O_RDONLY | libc::O_DIRECTORY)?;
        Ok(Dir {
            fd,
            path: self.path.join(name),
        })
    }

    /// Open a regular file for reading, refusing anything else and anything over `limit`
    /// bytes (apparent size). A FIFO is opened non-blocking, so it cannot hang the host.
    fn open_file(&self, name: &str, limit: u64) -> Result<(File, u64), Refused> {
        let fd = self.openat(name, libc::O_RDONLY | libc::O_NONBLOCK)?;
        let st = fstat(&fd)?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(Refused::NotRegular(kind(st.st_mode)));
        }
        let size = st.st_size as u64;
        if size > limit {
            return Err(Refused::TooLarge { size, limit });
        }
        Ok((File::from(fd), size))
    }

    /// The whole content of a regular file of at most `limit` bytes.
    pub fn read(&self, name: &str, limit: u64) -> Result<Vec<u8>, Refused> {
        let (f, size) = self.open_file(name, limit)?;
        let mut out = Vec::with_capacity(size as usize);
        // take(): a file that grows after fstat still yields at most `limit` bytes.
        f.take(limit + 1).read_to_end(&mut out)?;
        if out.len() as u64 > limit {
            return Err(Refused::TooLarge {
                size: out.len() as u64,
                limit,
            });
        }
        Ok(out)
    }

    /// Copy a regular file of at most `limit` bytes to `dest` (a host path); returns its size.
    pub fn copy_to(&self, name: &str, dest: &Path, limit: u64) -> Result<u64, Refused> {
        let (f, _) = self.open_file(name, limit)?;
        let mut out = File::create(dest)?;
        let n = io::copy(&mut f.take(limit + 1), &mut out)?;
        if n > limit {
            drop(out);
            let _ = std::fs::remove_file(dest);
            return Err(Refused::TooLarge { size: n, limit });
        }
        out.flush()?;
        Ok(n)
    }

    /// The entries (without `.` and `..`), at most `max` of them; what each one is comes
    /// from `fstatat` without following symlinks.
    pub fn entries(&self, max: usize) -> Result<Vec<Entry>, Refused> {
        // SAFETY: dup of an open fd; fdopendir takes ownership of the new fd.
        let fd = unsafe { libc::fcntl(self.fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error().into());
        }
        // SAFETY: fd is a fresh directory fd.
        let dirp = unsafe { libc::fdopendir(fd) };
        if dirp.is_null() {
            let e = io::Error::last_os_error();
            // SAFETY: fdopendir failed, so fd is still ours to close.
            unsafe { libc::close(fd) };
            return Err(e.into());
        }
        // SAFETY: fresh stream; rewind in case the shared offset moved.
        unsafe { libc::rewinddir(dirp) };
        let mut out = Vec::new();
        loop {
            // SAFETY: dirp is a valid stream until closedir below.
            let ent = unsafe { libc::readdir(dirp) };
            if ent.is_null() {
                break;
            }
            // SAFETY: d_name is NUL-terminated within the dirent.
            let name = unsafe { std::ffi::CStr::from_ptr((*ent).d_name.as_ptr()) };
            let Ok(name) = name.to_str() else {
                continue; // not UTF-8: never a name the host wrote or asked for
            };
            if name == "." || name == ".." {
                continue;
            }
            if out.len() >= max {
                break;
            }
            let (is_file, is_dir) = match self.lstat(name) {
                Ok(st) => (
                    st.st_mode & libc::S_IFMT == libc::S_IFREG,
                    st.st_mode & libc::S_IFMT == libc::S_IFDIR,
                ),
                Err(_) => (false, false),
            };
            out.push(Entry {
                name: name.to_string(),
                is_file,
                is_dir,
            });
        }
        // SAFETY: closes the stream and its fd.
        unsafe { libc::closedir(dirp) };
        Ok(out)
    }

    fn lstat(&self, name: &str) -> io::Result<libc::stat> {
        let c = cstr(name)?;
        let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
        // SAFETY: valid dir fd, NUL-terminated name, valid out pointer.
        let r = unsafe {
            libc::fstatat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                st.as_mut_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fstatat succeeded.
        Ok(unsafe { st.assume_init() })
    }

    /// Remove the entry `name` (a symlink is removed itself, never its target). Absent is fine.
    pub fn remove(&self, name: &str) -> io::Result<bool> {
        let c = cstr(name)?;
        // SAFETY: valid dir fd and NUL-terminated name.
        if unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), 0) } != 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOENT) => Ok(false),
                _ => Err(e),
            };
        }
        Ok(true)
    }
}

impl Dir {
    /// Remove the empty directory `name` (a non-empty one stays: false). Absent is fine.
    pub fn remove_dir(&self, name: &str) -> io::Result<bool> {
        let c = cstr(name)?;
        // SAFETY: valid dir fd and NUL-terminated name.
        if unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), libc::AT_REMOVEDIR) } != 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOENT) | Some(libc::ENOTEMPTY) | Some(libc::EEXIST) => Ok(false),
                _ => Err(e),
            };
        }
        Ok(true)
    }
}

/// True when `s` is `n` lowercase hex digits.
pub fn is_hex(s: &str, n: usize) -> bool {
    s.len() == n
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_only_small_regular_files() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("ok"), b"hello").unwrap();
        std::fs::write(t.path().join("big"), vec![b'x'; 100]).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", t.path().join("link")).unwrap();
        std::fs::create_dir(t.path().join("sub")).unwrap();
        let fifo = CString::new(t.path().join("fifo").as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let d = Dir::open(t.path()).unwrap();
        assert_eq!(d.read("ok", 10).unwrap(), b"hello");
        assert!(matches!(d.read("big", 10), Err(Refused::TooLarge { .. })));
        assert!(matches!(
            d.read("link", 10),
            Err(Refused::NotRegular("symlink"))
        ));
        assert!(matches!(
            d.read("fifo", 10),
            Err(Refused::NotRegular("FIFO"))
        ));
        assert!(matches!(
            d.read("sub", 10),
            Err(Refused::NotRegular("directory"))
        ));
        assert!(matches!(d.read("none", 10), Err(Refused::Missing)));
        assert!(d.read("../etc", 10).is_err());
        assert!(matches!(d.sub("link"), Err(Refused::NotRegular(_))));
        let mut names: Vec<_> = d
            .entries(100)
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.is_file))
            .collect();
        names.sort();
        assert_eq!(names.len(), 5);
        assert!(names.contains(&("ok".to_string(), true)));
        assert!(names.contains(&("link".to_string(), false)));
        assert_eq!(d.entries(2).unwrap().len(), 2);
        assert!(d.remove("link").unwrap());
        assert!(std::path::Path::new("/etc/passwd").exists());
        assert!(!d.remove("link").unwrap());
    }

    #[test]
    fn a_symlinked_directory_is_not_opened() {
        let t = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc", t.path().join("d")).unwrap();
        assert!(matches!(
            Dir::open(&t.path().join("d")),
            Err(Refused::NotRegular(_))
        ));
    }

    #[test]
    fn hex_is_checked() {
        assert!(is_hex("0123456789abcdef", 16));
        assert!(!is_hex("0123456789ABCDEF", 16));
        assert!(!is_hex("é", 2));
        assert!(!is_hex("00", 3));
    }
}
