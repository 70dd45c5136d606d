//! Opening a file below a directory without ever leaving it, whatever symlinks sit inside.
//!
//! Every file staticd serves is opened through [`open`]: STATIC_ROOT's table, the
//! `--media-root` mount and the `--internal` mounts. The request path is never the danger
//! (it is decoded once and refused if it holds `..`, dotfiles or encoded separators); a
//! symlink inside the tree is: `media/uploads -> /etc` made `/media/uploads/passwd` serve
//! `/etc/passwd`, because `O_NOFOLLOW` only guards a path's *last* component.
//!
//! How, and why this way:
//! - **`openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`** (Linux 5.6+): the kernel
//!   resolves the whole path, symlinks included, and refuses (`EXDEV`) any step out of the
//!   directory: an absolute symlink, a `..` above it, a link leading out. It is one syscall,
//!   the one the open costs anyway, and it is atomic: nothing can be swapped in between a
//!   check and the open, as it could be with `canonicalize` and a prefix test.
//! - **Symlinks that stay inside keep working** in the mounts ([`Links::Beneath`]), as they
//!   do in STATIC_ROOT's table, whose scan admits a path through a link by this same rule. A
//!   link whose target passes outside, even to come back in (`../media/a.txt`), is refused,
//!   and so is an absolute one, even pointing inside.
//!   The table opens the paths its scan already resolved with [`Links::Never`]: any symlink
//!   met at request time means the tree changed since the scan, and the file is refused (the
//!   table is then reloaded).
//! - **Fallback** for kernels before 5.6 and for seccomp profiles that refuse `openat2`
//!   (older Docker answered `EPERM` or `ENOSYS`): the same walk in user space, one component
//!   at a time with `O_NOFOLLOW`, holding a descriptor to each directory entered (so a
//!   rename behind it cannot move it outside); a symlink is read with `readlinkat` and its
//!   target walked in its place, refused when absolute or when its `..` climbs above the
//!   directory, at most 40 links (the kernel's limit). It gives the same answers, at a few
//!   syscalls per path component; which one runs is decided on the first open.

use std::collections::VecDeque;
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};

/// Which symlinks may be followed below the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// None at all (paths already resolved by STATIC_ROOT's scan).
    Never,
    /// Those that resolve without leaving the directory (the media and internal mounts).
    Beneath,
}

/// Symlinks followed on one path at most (the kernel's `MAXSYMLINKS`).
const MAX_LINKS: usize = 40;

/// Whether `openat2` works here: unknown, yes, or no (use the walk).
static OPENAT2: AtomicU8 = AtomicU8::new(UNKNOWN);
const UNKNOWN: u8 = 0;
const WORKS: u8 = 1;
const MISSING: u8 = 2;

/// Opens `rel` (relative; `..` and `.` allowed, as long as they stay below) inside `dir`
/// read-only, never resolving to anything outside `dir`. Outside: `EXDEV`; a symlink where
/// `links` forbids one: `ELOOP`.
pub fn open(dir: &File, rel: &Path, links: Links) -> io::Result<File> {
    if OPENAT2.load(Ordering::Relaxed) != MISSING {
        match openat2(dir, rel, links) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
                OPENAT2.store(MISSING, Ordering::Relaxed);
                tracing::debug!("openat2 unavailable ({e}): files are opened by a checked walk");
            }
            r => {
                OPENAT2.store(WORKS, Ordering::Relaxed);
                return r;
            }
        }
    }
    walk(dir, rel, links)
}

fn c_path(p: &[u8]) -> io::Result<CString> {
    CString::new(p).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

const FILE_FLAGS: libc::c_int = libc::O_RDONLY | libc::O_CLOEXEC;

/// The kernel's way (Linux 5.6+).
fn openat2(dir: &File, rel: &Path, links: Links) -> io::Result<File> {
    let path = c_path(rel.as_os_str().as_bytes())?;
    // SAFETY: `open_how` is plain integers; all-zero is its valid default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = FILE_FLAGS as u64;
    how.resolve = libc::RESOLVE_BENEATH
        | libc::RESOLVE_NO_MAGICLINKS
        | match links {
            Links::Never => libc::RESOLVE_NO_SYMLINKS,
            Links::Beneath => 0,
        };
    // SAFETY: valid dirfd, NUL-terminated path, and `how` of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a freshly opened descriptor that nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd as RawFd) })
}

fn openat(dir: RawFd, name: &[u8], flags: libc::c_int) -> io::Result<OwnedFd> {
    let c = c_path(name)?;
    // SAFETY: valid dirfd and NUL-terminated name.
    let fd = unsafe { libc::openat(dir, c.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a freshly opened descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The symlink `name` in `dir` points to; `None` when `name` is not a symlink.
fn readlink(dir: RawFd, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let c = c_path(name)?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: valid dirfd, NUL-terminated name, and a buffer of the length passed.
    let n = unsafe { libc::readlinkat(dir, c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EINVAL) => Ok(None),
            _ => Err(e),
        };
    }
    buf.truncate(n as usize);
    Ok(Some(buf))
}

fn components(p: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    p.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
}

/// The user-space walk: what `RESOLVE_BENEATH` does, one component at a time.
pub(crate) fn walk(dir: &File, rel: &Path, links: Links) -> io::Result<File> {
    let rel = rel.as_os_str().as_bytes();
    if rel.first() == Some(&b'/') {
        return Err(io::Error::from_raw_os_error(libc::EXDEV));
    }
    let mut todo: VecDeque<Vec<u8>> = components(rel).map(<[u8]>::to_vec).collect();
    // The directories entered below `dir`, innermost last.
    let mut entered: Vec<OwnedFd> = Vec::new();
    let mut followed = 0;
    while let Some(name) = todo.pop_front() {
        if name == b".." {
            if entered.pop().is_none() {
                return Err(io::Error::from_raw_os_error(libc::EXDEV));
            }
            continue;
        }
        let at = entered.last().map_or(dir.as_raw_fd(), |d| d.as_raw_fd());
        let last = todo.is_empty();
        let flags = if last {
            FILE_FLAGS | libc::O_NOFOLLOW
        } else {
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC | libc::O_NOFOLLOW
        };
        let err = match openat(at, &name, flags) {
            Ok(fd) if last => return Ok(File::from(fd)),
            Ok(fd) => {
                entered.push(fd);
                continue;
            }
            Err(e) => e,
        };
        // A symlink is refused by O_NOFOLLOW (ELOOP, or ENOTDIR with O_DIRECTORY).
        if !matches!(err.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) {
            return Err(err);
        }
        let Some(target) = readlink(at, &name)? else {
            return Err(err);
        };
        followed += 1;
        if links == Links::Never || followed > MAX_LINKS {
            return Err(io::Error::from_raw_os_error(libc::ELOOP));
        }
        if target.first() == Some(&b'/') {
            return Err(io::Error::from_raw_os_error(libc::EXDEV));
        }
        for c in components(&target).rev() {
            todo.push_front(c.to_vec());
        }
        if todo.is_empty() {
            // A link to "." or "": the directory itself, which is not a file.
            return Err(io::Error::from_raw_os_error(libc::EISDIR));
        }
    }
    // An empty path names the directory itself.
    Err(io::Error::from_raw_os_error(libc::EISDIR))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::symlink;

    /// root/ holds a file, a subdirectory, and links of every kind; outside/ is beside it.
    fn tree() -> (tempfile::TempDir, File) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        let out = t.path().join("outside");
        std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(root.join("a.txt"), "inside").unwrap();
        std::fs::write(root.join("sub/deeper/b.txt"), "deep").unwrap();
        std::fs::write(out.join("secret.txt"), "SECRET").unwrap();
        symlink("a.txt", root.join("alias.txt")).unwrap();
        symlink("sub/deeper", root.join("deeplink")).unwrap();
        symlink("../a.txt", root.join("sub/up.txt")).unwrap();
        symlink("../../a.txt", root.join("sub/deeper/upup.txt")).unwrap();
        symlink(&out, root.join("outdir")).unwrap();
        symlink(out.join("secret.txt"), root.join("abs.txt")).unwrap();
        symlink("../outside/secret.txt", root.join("rel-out.txt")).unwrap();
        symlink("../outside", root.join("rel-outdir")).unwrap();
        symlink("../root/a.txt", root.join("out-and-back.txt")).unwrap();
        symlink(root.join("a.txt"), root.join("abs-inside.txt")).unwrap();
        symlink("loop1", root.join("loop2")).unwrap();
        symlink("loop2", root.join("loop1")).unwrap();
        symlink(
            "deeplink/../../../outside/secret.txt",
            root.join("sneaky.txt"),
        )
        .unwrap();
        symlink("outdir", root.join("chain")).unwrap();
        let dir = File::open(&root).unwrap();
        (t, dir)
    }

    /// The file's text, or the error number (`EISDIR` for a directory, which the kernel
    /// opens and callers refuse by its metadata).
    fn read(r: io::Result<File>) -> Result<String, i32> {
        let mut f = r.map_err(|e| e.raw_os_error().unwrap_or(-1))?;
        if !f.metadata().unwrap().is_file() {
            return Err(libc::EISDIR);
        }
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        Ok(s)
    }

    /// Both implementations give the same answers.
    #[test]
    fn never_leaves_the_directory() {
        let (_t, dir) = tree();
        let cases: &[(&str, Links, Result<&str, ()>)] = &[
            ("a.txt", Links::Never, Ok("inside")),
            ("sub/deeper/b.txt", Links::Never, Ok("deep")),
            ("sub/../a.txt", Links::Never, Ok("inside")),
            ("./a.txt", Links::Never, Ok("inside")),
            ("alias.txt", Links::Beneath, Ok("inside")),
            ("deeplink/b.txt", Links::Beneath, Ok("deep")),
            ("sub/up.txt", Links::Beneath, Ok("inside")),
            ("deeplink/upup.txt", Links::Beneath, Ok("inside")),
            ("alias.txt", Links::Never, Err(())),
            ("deeplink/b.txt", Links::Never, Err(())),
            ("../outside/secret.txt", Links::Beneath, Err(())),
            ("outdir/secret.txt", Links::Beneath, Err(())),
            ("chain/secret.txt", Links::Beneath, Err(())),
            ("abs.txt", Links::Beneath, Err(())),
            ("rel-out.txt", Links::Beneath, Err(())),
            ("rel-outdir/secret.txt", Links::Beneath, Err(())),
            ("out-and-back.txt", Links::Beneath, Err(())),
            ("abs-inside.txt", Links::Beneath, Err(())),
            ("sneaky.txt", Links::Beneath, Err(())),
            ("loop1", Links::Beneath, Err(())),
            ("sub/..", Links::Beneath, Err(())),
            ("", Links::Beneath, Err(())),
            ("/etc/passwd", Links::Beneath, Err(())),
            ("missing.txt", Links::Beneath, Err(())),
        ];
        for &(p, links, want) in cases {
            let kernel = read(openat2(&dir, Path::new(p), links));
            let user = read(walk(&dir, Path::new(p), links));
            let public = read(open(&dir, Path::new(p), links));
            for (how, got) in [("openat2", &kernel), ("walk", &user), ("open", &public)] {
                match (want, got) {
                    (Ok(w), Ok(g)) => assert_eq!(w, g, "{how} {p} {links:?}"),
                    (Err(()), Err(_)) => {}
                    _ => panic!("{how} {p} {links:?}: {got:?}, want {want:?}"),
                }
            }
            // Escapes are refused as such, not as a missing file.
            let escape = p.contains("out") || p.starts_with("abs") || p == "sneaky.txt";
            if let (Err(()), true) = (want, escape) {
                if links == Links::Beneath {
                    assert_eq!(kernel, Err(libc::EXDEV), "openat2 {p}");
                    assert_eq!(user, Err(libc::EXDEV), "walk {p}");
                }
            }
        }
    }
}
