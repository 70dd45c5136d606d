//! One collected file and everything a collect learns about it, stage by stage.
//!
//! The stages of [`collect`](super::collect) are functions over these records: stat, compare
//! with the previous run, read, name, rewrite (CSS/JS, in `process`), plan the outputs, write.
//! Each fills in its own fields of an [`Entry`], so each can be read, and tested, alone; they
//! used to pass ten vectors indexed like the planned files to each other.
use super::missing::MissingReference;
use super::naming::{hashed_name, HashAlgo};
use super::plan::SourceFile;
use super::rewrite::{self, Kind};
use super::state::{FileState, Stat};
use super::variants::Ticket;
use super::Error;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

/// A planned source file, from its stat to the outputs it puts in STATIC_ROOT.
#[derive(Debug)]
pub struct Entry<'a> {
    /// Where it comes from and its collected path (the manifest key).
    pub src: &'a SourceFile,
    /// Its stat now; `None` when it cannot be stat'ed (it is then never trusted unchanged).
    pub stat: Option<Stat>,
    /// The previous run's record of the same collected path, if there was a usable one.
    pub prev: Option<&'a FileState>,
    /// Already named by content by a front-end bundler (collect/bundler.rs says which and
    /// why): published once, under its own path, bytes as they are. Set by
    /// [`Entry::set_bundled`] before the previous run is compared.
    pub bundled: bool,
    /// CSS/JS that the manifest storage rewrites; `None` for every other file (a bundled one
    /// included: it is never rewritten).
    pub kind: Option<Kind>,
    /// The source bytes, once read. An unchanged source whose outputs are all still in
    /// STATIC_ROOT is never read.
    pub bytes: Option<Arc<[u8]>>,
    /// Digest of the source bytes (recorded for the next run).
    pub fingerprint: Option<String>,
    /// Final hashed name (manifest storage only).
    pub name: Option<String>,
    /// CSS/JS: the references found in it this run (empty when it was not scanned).
    pub refs: Vec<rewrite::Reference>,
    /// CSS/JS: the manifest keys its references point at.
    pub targets: Vec<String>,
    /// Missing references a `warn` or `ignore` rule let through.
    pub missing: Vec<MissingReference>,
    /// CSS/JS: bytes after rewriting, when they differ from `bytes`.
    pub rewritten: Option<Arc<[u8]>>,
    /// CSS/JS run through the rewriter this time.
    pub rewrote: bool,
    /// CSS/JS whose hashed file is carried over from the old tree (its bytes never loaded).
    pub carried: bool,
    /// Its hashed copy (manifest storage; never for a bundled file, whose name is its own).
    pub hashed: Option<Output>,
    /// The file under its own name (absent with WhiteNoise's `KEEP_ONLY_HASHED_FILES`, unless
    /// bundled: then it is the published copy).
    pub original: Option<Output>,
    /// The compressed variants of each of its contents, when some output wants them.
    pub variants: [Option<Ticket>; 2],
}

/// Which bytes an output holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// The source bytes.
    Source,
    /// The rewritten bytes of a CSS/JS file.
    Rewritten,
    /// The hashed file of the old tree, carried over; there are no bytes to write.
    Carried,
}

impl Content {
    fn slot(self) -> usize {
        match self {
            Content::Source | Content::Carried => 0,
            Content::Rewritten => 1,
        }
    }
}

/// One file an entry puts in STATIC_ROOT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Path under STATIC_ROOT.
    pub rel: String,
    /// The hashed copy (as opposed to the file under its own name).
    pub hashed: bool,
    /// `--link`: a symlink to the source, no bytes of its own.
    pub symlink: bool,
    pub content: Content,
    /// The previous tree holds it with the right bytes: carried over (with its variants),
    /// not written.
    pub reused: bool,
}

/// What the output-planning stages need to know about the run.
#[derive(Debug, Clone, Copy)]
pub struct Layout<'a> {
    pub static_root: &'a Path,
    /// There is a previous run's state to trust outputs against.
    pub has_prev: bool,
    /// Manifest storage post-processes (hashed copies exist).
    pub post_process: bool,
    /// Originals are not written (WhiteNoise's `KEEP_ONLY_HASHED_FILES` with post-processing).
    pub keep_only_hashed: bool,
    /// WhiteNoise's `KEEP_ONLY_HASHED_FILES` as set (whether or not post-processing runs).
    pub keep_only_hashed_files: bool,
    /// `--link`.
    pub link: bool,
}

impl<'a> Entry<'a> {
    pub fn new(src: &'a SourceFile) -> Self {
        Entry {
            src,
            stat: None,
            prev: None,
            bundled: false,
            kind: rewrite::kind_of(&src.rel),
            bytes: None,
            fingerprint: None,
            name: None,
            refs: Vec::new(),
            targets: Vec::new(),
            missing: Vec::new(),
            rewritten: None,
            rewrote: false,
            carried: false,
            hashed: None,
            original: None,
            variants: [None, None],
        }
    }

    /// Marks the file bundled or not: a bundled file is not CSS/JS to rewrite.
    pub fn set_bundled(&mut self, bundled: bool) {
        self.bundled = bundled;
        self.kind = rewrite::kind_of(&self.src.rel).filter(|_| !bundled);
    }

    /// The previous run's record, if the source is provably the one it describes: same path,
    /// size, mtime and inode (the rule make and cargo use), and bundled the same way (a bundled
    /// file's recorded name is its own path, which Django's hashed names never are).
    pub fn unchanged(&self) -> Option<&'a FileState> {
        self.prev.filter(|p| {
            p.abs == self.src.abs
                && Some(p.stat) == self.stat
                && (p.name == self.src.rel) == self.bundled
        })
    }

    /// An unchanged source whose outputs are all still in the tree is not read: its outputs
    /// are carried over (CSS/JS whose targets were renamed are read later, when rewritten).
    pub fn skips_read(&self, l: &Layout) -> bool {
        self.unchanged().is_some_and(|p| {
            l.static_root.join(&p.name).is_file()
                && (l.keep_only_hashed_files || l.static_root.join(&self.src.rel).is_file())
        })
    }

    /// Stage "read": the source bytes, unless [`Entry::skips_read`].
    pub fn read(&mut self, l: &Layout) -> Result<(), Error> {
        if !self.skips_read(l) {
            self.bytes = Some(read_source(&self.src.abs)?.into());
        }
        Ok(())
    }

    /// The source bytes, read now if an earlier stage skipped them.
    pub fn source_bytes(&mut self) -> Result<Arc<[u8]>, Error> {
        if self.bytes.is_none() {
            self.bytes = Some(read_source(&self.src.abs)?.into());
        }
        Ok(self.bytes.clone().expect("just read"))
    }

    /// Stage "name": the digest of the source, and for a file that is not rewritten its final
    /// hashed name. An unchanged source keeps its digest: no hashing beyond a stat.
    ///
    /// This is the one place that decides the name of a file whose bytes are final: a file a
    /// bundler already named by content keeps its own name here.
    pub fn name_by_content(&mut self, algo: HashAlgo) {
        let fingerprint = match self.unchanged() {
            Some(p) => p.fingerprint.clone(),
            None => algo.fingerprint(self.bytes.as_deref().expect("a changed source is read")),
        };
        if self.bundled {
            self.name = Some(self.src.rel.clone());
        } else if self.kind.is_none() {
            self.name = Some(hashed_name(&self.src.rel, &fingerprint));
        }
        self.fingerprint = Some(fingerprint);
    }

    /// Stage "outputs": plans each output whose content is final and that is not planned yet:
    /// the original at once, the hashed copy once the file is named (a CSS/JS file once
    /// rewritten). Each is marked reused when the previous tree already holds it with the
    /// right bytes: a hashed name pins its content, and an original is the same when its
    /// source is unchanged since the last run.
    ///
    /// A bundled file has one output, under its own name (which is also its manifest name):
    /// written even under `KEEP_ONLY_HASHED_FILES`, and with real bytes under `--link`, as
    /// the hashed copy it stands for would be.
    pub fn plan_outputs(&mut self, l: &Layout) {
        if self.bundled {
            if self.original.is_none() {
                let rel = self.src.rel.clone();
                self.original = Some(self.output(rel, false, false, Content::Source, l));
            }
            return;
        }
        if l.post_process && self.hashed.is_none() {
            if let Some(rel) = self.name.clone() {
                let content = if self.carried {
                    Content::Carried
                } else if self.rewritten.is_some() {
                    Content::Rewritten
                } else {
                    Content::Source
                };
                self.hashed = Some(self.output(rel, true, false, content, l));
            }
        }
        if !l.keep_only_hashed && self.original.is_none() {
            let rel = self.src.rel.clone();
            self.original = Some(self.output(rel, false, l.link, Content::Source, l));
        }
    }

    /// Reads the source bytes that an output to be written needs and an earlier stage
    /// skipped (its old copy vanished from STATIC_ROOT meanwhile).
    pub fn load_sources(&mut self) -> Result<(), Error> {
        if self.to_write().any(|o| o.content == Content::Source) {
            self.source_bytes()?;
        }
        Ok(())
    }

    /// A hashed file carried over from the old tree (never read) must still be there.
    pub fn check_carried(&self) -> Result<(), Error> {
        match self.to_write().find(|o| o.content == Content::Carried) {
            Some(o) => Err(Error::OutputVanished { rel: o.rel.clone() }),
            None => Ok(()),
        }
    }

    fn output(
        &self,
        rel: String,
        hashed: bool,
        symlink: bool,
        content: Content,
        l: &Layout,
    ) -> Output {
        let reused = l.has_prev
            && !symlink
            && l.static_root.join(&rel).is_file()
            && (hashed || self.unchanged().is_some());
        Output {
            rel,
            hashed,
            symlink,
            content,
            reused,
        }
    }

    /// Its outputs, the hashed copy first (it is the one that writes a content both share).
    pub fn outputs(&self) -> impl Iterator<Item = &Output> {
        self.hashed.iter().chain(self.original.iter())
    }

    /// The outputs to be written (not carried over from the old tree).
    pub fn to_write(&self) -> impl Iterator<Item = &Output> {
        self.outputs().filter(|o| !o.reused)
    }

    /// The bytes of `content`, if loaded.
    pub fn content(&self, content: Content) -> Option<&Arc<[u8]>> {
        match content {
            Content::Source => self.bytes.as_ref(),
            Content::Rewritten => self.rewritten.as_ref(),
            Content::Carried => None,
        }
    }

    /// The variants of `content`, if some output wanted them compressed.
    pub fn ticket(&self, content: Content) -> Option<Ticket> {
        self.variants[content.slot()]
    }

    pub fn set_ticket(&mut self, content: Content, ticket: Ticket) {
        self.variants[content.slot()] = Some(ticket);
    }
}

/// Reads a source file; a failure names it. Only a regular file is read: a FIFO would block
/// the collect forever (Django's collectstatic hangs on one) and a device may never end.
pub fn read_source(abs: &Path) -> Result<Vec<u8>, Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let read = || -> io::Result<Vec<u8>> {
        // O_NONBLOCK: opening a FIFO for reading waits for a writer otherwise. It changes
        // nothing for a regular file.
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(abs)?;
        let meta = f.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::other(
                "not a regular file (a FIFO, socket or device); remove it or ignore it with -i",
            ));
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        f.read_to_end(&mut bytes)?;
        Ok(bytes)
    };
    read().map_err(|e| Error::read(abs, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn file_state(abs: &Path, name: &str) -> FileState {
        FileState {
            abs: abs.to_path_buf(),
            stat: Stat::of(abs).unwrap(),
            fingerprint: "0123456789ab".into(),
            name: name.into(),
            targets: Vec::new(),
            missing: Vec::new(),
        }
    }

    fn layout(root: &Path) -> Layout<'_> {
        Layout {
            static_root: root,
            has_prev: true,
            post_process: true,
            keep_only_hashed: false,
            keep_only_hashed_files: false,
            link: false,
        }
    }

    #[test]
    fn an_unchanged_source_with_its_outputs_in_place_is_not_read() {
        let t = tempfile::tempdir().unwrap();
        let (src_dir, root) = (t.path().join("src"), t.path().join("static"));
        fs::create_dir_all(&src_dir).unwrap();
        fs::create_dir_all(root.join("img")).unwrap();
        let abs = src_dir.join("a.png");
        fs::write(&abs, b"png").unwrap();
        let src = SourceFile {
            rel: "img/a.png".into(),
            abs: abs.clone(),
        };
        let prev = file_state(&abs, "img/a.0123456789ab.png");
        let l = layout(&root);
        let mut e = Entry::new(&src);
        e.stat = Stat::of(&abs);
        e.prev = Some(&prev);
        assert!(e.unchanged().is_some());
        // The hashed copy is not in the tree yet: read.
        assert!(!e.skips_read(&l));
        fs::write(root.join("img/a.0123456789ab.png"), b"png").unwrap();
        // The original is missing (and wanted): read.
        assert!(!e.skips_read(&l));
        assert!(e.skips_read(&Layout {
            keep_only_hashed_files: true,
            ..l
        }));
        fs::write(root.join("img/a.png"), b"png").unwrap();
        assert!(e.skips_read(&l));
        e.read(&l).unwrap();
        assert!(e.bytes.is_none());
        // Touched: no longer provably the same.
        fs::write(&abs, b"png2").unwrap();
        e.stat = Stat::of(&abs);
        assert!(e.unchanged().is_none() && !e.skips_read(&l));
        e.read(&l).unwrap();
        assert_eq!(e.bytes.as_deref(), Some(&b"png2"[..]));
    }

    #[test]
    fn only_regular_files_are_read() {
        let t = tempfile::tempdir().unwrap();
        let fifo = t.path().join("pipe.css");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let err = read_source(&fifo).unwrap_err();
        assert_eq!(err.kind(), "unreadable_source");
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let err = read_source(t.path()).unwrap_err();
        assert_eq!(err.kind(), "unreadable_source");
        let err = read_source(&t.path().join("gone.css")).unwrap_err();
        assert_eq!(err.kind(), "source_vanished");
        fs::write(t.path().join("a.css"), b"a").unwrap();
        assert_eq!(read_source(&t.path().join("a.css")).unwrap(), b"a");
    }

    #[test]
    fn names_come_from_the_bytes_or_the_previous_digest() {
        let t = tempfile::tempdir().unwrap();
        let abs = t.path().join("a.png");
        fs::write(&abs, b"foo").unwrap();
        let src = SourceFile {
            rel: "img/a.png".into(),
            abs: abs.clone(),
        };
        let mut e = Entry::new(&src);
        e.bytes = Some(Arc::from(&b"foo"[..]));
        e.name_by_content(HashAlgo::Md5);
        assert_eq!(e.name.as_deref(), Some("img/a.acbd18db4cc2.png"));
        // Unchanged: the recorded digest, bytes not needed.
        let prev = file_state(&abs, "img/a.0123456789ab.png");
        let mut e = Entry::new(&src);
        e.stat = Stat::of(&abs);
        e.prev = Some(&prev);
        e.name_by_content(HashAlgo::Md5);
        assert_eq!(e.name.as_deref(), Some("img/a.0123456789ab.png"));
        // CSS/JS get their digest here and their name when rewritten.
        let css = SourceFile {
            rel: "css/a.css".into(),
            abs,
        };
        let mut e = Entry::new(&css);
        e.bytes = Some(Arc::from(&b"foo"[..]));
        e.name_by_content(HashAlgo::Md5);
        assert_eq!(e.fingerprint.as_deref(), Some("acbd18db4cc2"));
        assert!(e.name.is_none());
    }

    #[test]
    fn outputs_already_in_the_tree_are_reused() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("static");
        fs::create_dir_all(root.join("css")).unwrap();
        let abs = t.path().join("a.css");
        fs::write(&abs, b"a").unwrap();
        let src = SourceFile {
            rel: "css/a.css".into(),
            abs: abs.clone(),
        };
        fs::write(root.join("css/a.111.css"), b"a").unwrap();
        fs::write(root.join("css/a.css"), b"a").unwrap();
        let l = layout(&root);
        let mut e = Entry::new(&src);
        // Not named yet (CSS before its rewrite): only the original.
        e.plan_outputs(&l);
        assert!(e.hashed.is_none());
        assert!(!e.original.as_ref().unwrap().reused);
        e.name = Some("css/a.111.css".into());
        e.plan_outputs(&l);
        let hashed = e.hashed.clone().unwrap();
        // A hashed name pins its content; the original is only trusted for an unchanged source.
        assert!(hashed.reused && hashed.content == Content::Source);
        assert_eq!(
            e.outputs().map(|o| o.rel.as_str()).collect::<Vec<_>>(),
            ["css/a.111.css", "css/a.css"]
        );
        let prev = file_state(&abs, "css/a.111.css");
        let mut e = Entry::new(&src);
        e.name = Some("css/a.111.css".into());
        e.stat = Stat::of(&abs);
        e.prev = Some(&prev);
        e.rewritten = Some(Arc::from(&b"b"[..]));
        e.plan_outputs(&l);
        assert!(e.original.as_ref().unwrap().reused);
        assert_eq!(e.hashed.as_ref().unwrap().content, Content::Rewritten);
        assert_eq!(e.to_write().count(), 0);
        // No previous state: nothing is trusted; --link: originals are symlinks, never reused;
        // KEEP_ONLY_HASHED_FILES: no original at all.
        let mut e = Entry::new(&src);
        e.name = Some("css/a.111.css".into());
        e.plan_outputs(&Layout {
            has_prev: false,
            link: true,
            ..l
        });
        assert_eq!(e.to_write().count(), 2);
        assert!(e.original.as_ref().unwrap().symlink);
        let mut e = Entry::new(&src);
        e.name = Some("css/a.222.css".into());
        e.plan_outputs(&Layout {
            keep_only_hashed: true,
            ..l
        });
        assert!(e.original.is_none());
        assert!(!e.hashed.as_ref().unwrap().reused);
    }

    /// A chunk as Vite names it, written in `dir`.
    fn vite_chunk(dir: &Path) -> SourceFile {
        let abs = dir.join("main-DxqxU1Uw.js");
        fs::write(&abs, b"js").unwrap();
        SourceFile {
            rel: "assets/main-DxqxU1Uw.js".into(),
            abs,
        }
    }

    #[test]
    fn a_bundled_file_keeps_its_name_and_has_one_real_copy() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("static");
        let src = vite_chunk(t.path());
        let mut e = Entry::new(&src);
        assert!(e.kind.is_some());
        e.set_bundled(true);
        assert!(e.kind.is_none(), "never rewritten");
        e.bytes = Some(Arc::from(&b"js"[..]));
        e.name_by_content(HashAlgo::Md5);
        assert_eq!(e.name.as_deref(), Some("assets/main-DxqxU1Uw.js"));
        assert!(e.fingerprint.is_some(), "recorded for the next run");
        // One output, its own name: kept under KEEP_ONLY_HASHED_FILES, real bytes under --link.
        e.plan_outputs(&Layout {
            keep_only_hashed: true,
            link: true,
            ..layout(&root)
        });
        assert!(e.hashed.is_none());
        let o = e.original.clone().unwrap();
        assert_eq!(
            (o.rel.as_str(), o.symlink),
            ("assets/main-DxqxU1Uw.js", false)
        );
        e.set_bundled(false);
        assert!(e.kind.is_some());
    }

    #[test]
    fn a_flipped_bundled_status_is_a_change() {
        let t = tempfile::tempdir().unwrap();
        let src = vite_chunk(t.path());
        let abs = &src.abs;
        let was_hashed = file_state(abs, "assets/main-DxqxU1Uw.0123456789ab.js");
        let was_bundled = file_state(abs, "assets/main-DxqxU1Uw.js");
        for (prev, bundled, unchanged) in [
            (&was_hashed, false, true),
            (&was_hashed, true, false),
            (&was_bundled, true, true),
            (&was_bundled, false, false),
        ] {
            let mut e = Entry::new(&src);
            e.set_bundled(bundled);
            e.stat = Stat::of(abs);
            e.prev = Some(prev);
            assert_eq!(
                e.unchanged().is_some(),
                unchanged,
                "{} {bundled}",
                prev.name
            );
        }
    }

    #[test]
    fn skipped_bytes_are_read_when_an_output_needs_them_and_carried_ones_must_exist() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("static");
        let abs = t.path().join("a.css");
        fs::write(&abs, b"a").unwrap();
        let src = SourceFile {
            rel: "css/a.css".into(),
            abs,
        };
        let l = layout(&root);
        let mut e = Entry::new(&src);
        e.name = Some("css/a.111.css".into());
        e.carried = true;
        e.plan_outputs(&l);
        e.load_sources().unwrap();
        assert_eq!(e.bytes.as_deref(), Some(&b"a"[..]));
        let err = e.check_carried().unwrap_err();
        assert_eq!(err.kind(), "output_vanished");
        assert!(
            err.to_string().starts_with("css/a.111.css vanished"),
            "{err}"
        );
    }
}
