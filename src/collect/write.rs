//! Stage "write": every output that is not carried over goes into the stage, with its
//! variants, and Django's counters are kept on the way.
use super::entry::{Entry, Output};
use super::publish::{Stage, Written};
use super::report::{Log, Progress};
use super::variants::Compressed;
use super::Error;
use rayon::prelude::*;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// What staging did, in the summary's terms.
#[derive(Debug, Default)]
pub struct Staged {
    /// Outputs staged.
    pub outputs: usize,
    /// Originals written or linked anew.
    pub copied: usize,
    /// Originals whose bytes the old tree already had.
    pub unmodified: usize,
    /// Hashed copies Django counts as post-processed.
    pub post_processed: usize,
    /// Variant files staged.
    pub variants: usize,
    /// New bytes written.
    pub bytes_out: u64,
}

/// How one output reaches the stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role<'e> {
    /// Writes its content (the first output of the entry with it).
    Write,
    /// Another name for the content `writer` wrote.
    Link { writer: &'e str },
    /// `--link`: a symlink to the source; variants (if any) link to `writer`'s.
    Symlink { writer: Option<&'e str> },
}

/// The outputs of `e` to write and their roles. Several outputs can share one content (an
/// original and its hashed copy): the first writes it, the others link to it.
pub fn roles<'e>(e: &'e Entry) -> Vec<(&'e Output, Role<'e>)> {
    let writer_of = |o: &Output| {
        e.to_write()
            .find(|w| !w.symlink && w.content == o.content)
            .map(|w| w.rel.as_str())
    };
    e.to_write()
        .map(|o| {
            let role = match writer_of(o) {
                _ if o.symlink => Role::Symlink {
                    writer: writer_of(o),
                },
                Some(w) if w != o.rel => Role::Link { writer: w },
                _ => Role::Write,
            };
            (o, role)
        })
        .collect()
}

/// Stages every output of `entries` to be written. Writers go first so that linkers find
/// their file.
pub fn stage_all(
    entries: &[Entry],
    stage: &Stage,
    compressed: Option<&Compressed>,
    link: bool,
    log: &Log,
    progress: &Progress,
) -> Result<Staged, Error> {
    let jobs: Vec<(&Entry, &Output, Role)> = entries
        .iter()
        .flat_map(|e| roles(e).into_iter().map(move |(o, r)| (e, o, r)))
        .collect();
    let (writers, others): (Vec<_>, Vec<_>) = jobs.iter().partition(|j| j.2 == Role::Write);
    let counts = Counters::default();
    progress.stage("writing", jobs.len());
    for batch in [writers, others] {
        batch
            .par_iter()
            .try_for_each(|&&(e, o, role)| -> Result<(), Error> {
                stage_one(e, o, role, stage, compressed, link, log, &counts)?;
                progress.inc();
                Ok(())
            })?;
    }
    Ok(Staged {
        outputs: jobs.len(),
        copied: counts.copied.into_inner(),
        unmodified: counts.unmodified.into_inner(),
        post_processed: counts.post_processed.into_inner(),
        variants: counts.variants.into_inner(),
        bytes_out: counts.bytes_out.into_inner(),
    })
}

#[derive(Default)]
struct Counters {
    copied: AtomicUsize,
    unmodified: AtomicUsize,
    post_processed: AtomicUsize,
    variants: AtomicUsize,
    bytes_out: AtomicU64,
}

#[allow(clippy::too_many_arguments)]
fn stage_one(
    e: &Entry,
    o: &Output,
    role: Role,
    stage: &Stage,
    compressed: Option<&Compressed>,
    link: bool,
    log: &Log,
    counts: &Counters,
) -> Result<(), Error> {
    let src = e.src;
    let result = match role {
        Role::Symlink { .. } => stage.symlink(&o.rel, &src.abs)?,
        Role::Link { writer } => {
            stage.link(&o.rel, writer)?;
            Written::New
        }
        Role::Write => {
            let bytes = e
                .content(o.content)
                .expect("the bytes of an output to write are loaded");
            let r = stage.write(&o.rel, bytes)?;
            if r == Written::New {
                counts
                    .bytes_out
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            }
            r
        }
    };
    if o.hashed {
        // Django counts a non-CSS/JS hashed file only when it did not exist yet.
        if result == Written::New || o.content == super::entry::Content::Rewritten {
            counts.post_processed.fetch_add(1, Ordering::Relaxed);
        }
        log.line(2, format!("Post-processed '{}' as '{}'", src.rel, o.rel));
    } else if result == Written::Unchanged {
        counts.unmodified.fetch_add(1, Ordering::Relaxed);
        log.line(2, format!("Skipping '{}' (not modified)", src.rel));
    } else {
        counts.copied.fetch_add(1, Ordering::Relaxed);
        let verb = if link { "Linking" } else { "Copying" };
        log.line(2, format!("{verb} '{}'", src.abs.display()));
    }
    if let (Some(compressed), true) = (compressed, o.hashed) {
        for (name, bytes) in compressed.deltas_of(&o.rel) {
            stage.write(name, bytes)?;
            let len = bytes.len() as u64;
            counts.bytes_out.fetch_add(len, Ordering::Relaxed);
        }
    }
    let (Some(compressed), Some(ticket)) = (compressed, e.ticket(o.content)) else {
        return Ok(());
    };
    for (suffix, bytes) in compressed.get(ticket).iter() {
        let name = format!("{}{suffix}", o.rel);
        match role {
            Role::Write => {
                stage.write(&name, bytes)?;
                counts
                    .bytes_out
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            }
            Role::Link { writer }
            | Role::Symlink {
                writer: Some(writer),
            } => stage.link(&name, &format!("{writer}{suffix}"))?,
            Role::Symlink { writer: None } => {
                unreachable!("variants are wanted only by an output that writes")
            }
        }
        counts.variants.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::entry::Content;
    use crate::collect::plan::SourceFile;

    fn output(rel: &str, hashed: bool, symlink: bool, content: Content, reused: bool) -> Output {
        Output {
            rel: rel.into(),
            hashed,
            symlink,
            content,
            reused,
        }
    }

    #[test]
    fn the_first_output_of_a_content_writes_it_the_others_link() {
        let src = SourceFile {
            rel: "img/a.png".into(),
            abs: "/src/img/a.png".into(),
        };
        let mut e = Entry::new(&src);
        e.hashed = Some(output("img/a.1.png", true, false, Content::Source, false));
        e.original = Some(output("img/a.png", false, false, Content::Source, false));
        let r: Vec<_> = roles(&e)
            .into_iter()
            .map(|(o, r)| (o.rel.clone(), r))
            .collect();
        assert_eq!(
            r,
            [
                ("img/a.1.png".to_string(), Role::Write),
                (
                    "img/a.png".to_string(),
                    Role::Link {
                        writer: "img/a.1.png"
                    }
                )
            ]
        );
        // The hashed copy is in the old tree already: the original writes.
        e.hashed.as_mut().unwrap().reused = true;
        assert_eq!(roles(&e)[0].1, Role::Write);
        assert_eq!(roles(&e).len(), 1);
        // Rewritten CSS: two contents, two writers. --link: the original is a symlink whose
        // variants link to the hashed copy's when they share a content.
        e.hashed = Some(output(
            "img/a.1.png",
            true,
            false,
            Content::Rewritten,
            false,
        ));
        assert!(roles(&e).iter().all(|(_, r)| *r == Role::Write));
        e.hashed.as_mut().unwrap().content = Content::Source;
        e.original = Some(output("img/a.png", false, true, Content::Source, false));
        assert_eq!(
            roles(&e)[1].1,
            Role::Symlink {
                writer: Some("img/a.1.png")
            }
        );
        e.hashed = None;
        assert_eq!(roles(&e)[0].1, Role::Symlink { writer: None });
    }
}
