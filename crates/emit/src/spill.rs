//! The spill: append-only files of events that could not be buffered or
//! published. One line per event, `<type>\t<id>\t<body>` (the JSON body never
//! holds a raw tab or newline), followed by `\t<traceparent>\t<tracestate>`
//! when the event carries a trace context, so a replayed event continues the
//! producer's trace. An event without one keeps the three-field line, which
//! the versions before the trace fields read too. Each append is written through to the OS, so a
//! killed producer loses nothing it spilled; a torn last line is skipped on replay.
//! The files' total size is bounded (`max_spill_bytes`): past it, events are
//! dropped, counted and logged, and the disk does not fill up.
use crate::Pending;
use prometheus::IntGauge;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Spill {
    dir: PathBuf,
    /// `max_spill_bytes`: the most the directory's spill files may hold.
    max_bytes: u64,
    state: Mutex<State>,
    /// `hookfleet_emit_spill_bytes`: [`State::bytes`], for the host's registry.
    size: IntGauge,
    seq: AtomicU64,
    /// Held for the life of the emitter: one producer process per spill directory
    /// (another one replaying our active file would lose what we append after).
    _lock: File,
}

struct State {
    active: Option<BufWriter<File>>,
    /// Bytes in the directory's spill files: scanned at open (files of an
    /// earlier run count), then kept up to date by appends and removals.
    bytes: u64,
    /// Drops not logged yet, and when the last drop line was written: at most
    /// one line a second, so a full spill under load does not flood the log.
    unlogged: u64,
    last_log: Option<Instant>,
}

impl Spill {
    /// Opens (creates) `dir` and locks it for this emitter. `max_bytes` bounds
    /// the spill files' total size; `size` is set to it as it changes.
    pub fn open(dir: &Path, max_bytes: u64, size: IntGauge) -> std::io::Result<Spill> {
        std::fs::create_dir_all(dir)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("spill.lock"))?;
        lock.try_lock().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                format!("spill directory {} is in use by another emitter; give each producer process its own", dir.display()),
            )
        })?;
        let bytes = scan_bytes(dir)?;
        size.set(gauge(bytes));
        Ok(Spill {
            dir: dir.to_owned(),
            max_bytes,
            state: Mutex::new(State {
                active: None,
                bytes,
                unlogged: 0,
                last_log: None,
            }),
            size,
            seq: AtomicU64::new(0),
            _lock: lock,
        })
    }

    /// Appends events, in order, to the active spill file (creating one when
    /// needed); returns how many were written. It stops at the first event
    /// that would take the directory past `max_bytes`, or at a write error:
    /// the rest are the caller's to count as dropped, and are logged here.
    pub fn append(&self, events: &[Pending]) -> usize {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (written, failure) = match self.write(&mut st, events) {
            Ok(n) if n == events.len() => (n, None),
            Ok(n) => (
                n,
                Some(format!(
                    "the spill directory is full (max_spill_bytes = {})",
                    self.max_bytes
                )),
            ),
            Err(e) => {
                // Part of the batch may be on disk: count what is there.
                st.active = None;
                if let Ok(b) = scan_bytes(&self.dir) {
                    st.bytes = b;
                }
                (0, Some(format!("cannot write the spill file: {e}")))
            }
        };
        self.size.set(gauge(st.bytes));
        if let Some(why) = failure {
            st.unlogged += (events.len() - written) as u64;
            let due = st
                .last_log
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
            if due {
                tracing::error!(
                    dropped = st.unlogged,
                    spill_bytes = st.bytes,
                    dir = %self.dir.display(),
                    "hookfleet-emit: events dropped: {why}."
                );
                st.unlogged = 0;
                st.last_log = Some(Instant::now());
            }
        }
        written
    }

    /// Writes the events that fit under `max_bytes`; how many.
    fn write(&self, st: &mut State, events: &[Pending]) -> std::io::Result<usize> {
        let fit = events
            .iter()
            .scan(st.bytes, |total, e| {
                *total = total.saturating_add(line_len(e));
                Some(*total)
            })
            .take_while(|total| *total <= self.max_bytes)
            .count();
        if fit == 0 {
            return Ok(0);
        }
        let w = match &mut st.active {
            Some(w) => w,
            empty => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                let name = format!(
                    "spill-{nanos:020}-{}-{}.jsonl",
                    std::process::id(),
                    self.seq.fetch_add(1, Ordering::Relaxed)
                );
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.join(name))?;
                empty.insert(BufWriter::new(file))
            }
        };
        for e in &events[..fit] {
            w.write_all(e.event_type.as_bytes())?;
            w.write_all(b"\t")?;
            w.write_all(e.id.as_bytes())?;
            w.write_all(b"\t")?;
            w.write_all(&e.body)?;
            if let Some((tp, ts)) = trace_fields(e) {
                w.write_all(b"\t")?;
                w.write_all(tp.as_bytes())?;
                w.write_all(b"\t")?;
                w.write_all(ts.as_bytes())?;
            }
            w.write_all(b"\n")?;
        }
        w.flush()?;
        st.bytes += events[..fit].iter().map(line_len).sum::<u64>();
        Ok(fit)
    }

    /// Closes the active file and returns every spill file, oldest first (also
    /// those left by an earlier run of the producer).
    pub fn take_files(&self) -> std::io::Result<Vec<PathBuf>> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mut w) = st.active.take() {
            w.flush()?;
        }
        spill_files(&self.dir)
    }

    /// Deletes a spill file whose events are all confirmed.
    pub fn remove(&self, file: &Path) -> std::io::Result<()> {
        let len = std::fs::metadata(file)?.len();
        std::fs::remove_file(file)?;
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.bytes = st.bytes.saturating_sub(len);
        self.size.set(gauge(st.bytes));
        Ok(())
    }

    /// Bytes in the directory's spill files.
    pub fn bytes(&self) -> u64 {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).bytes
    }
}

/// The bytes of an event's spill line, `<type>\t<id>\t<body>[\t<traceparent>\t<tracestate>]\n`.
fn line_len(e: &Pending) -> u64 {
    let trace = trace_fields(e).map_or(0, |(tp, ts)| tp.len() + ts.len() + 2);
    (e.event_type.len() + e.id.len() + e.body.len() + 3 + trace) as u64
}

/// The trace fields of an event's line: its `traceparent` and its
/// `tracestate` (empty when it has none). None without a `traceparent`, or
/// when either holds a tab or a line break (no valid one does), which would
/// tear the line.
fn trace_fields(e: &Pending) -> Option<(&str, &str)> {
    let t = e.trace.as_ref()?;
    let tp = t.traceparent.as_deref()?;
    let ts = t.tracestate.as_deref().unwrap_or("");
    let clean = |s: &str| !s.contains(['\t', '\n', '\r']);
    (clean(tp) && clean(ts)).then_some((tp, ts))
}

fn gauge(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

/// The spill files of `dir`, oldest first.
fn spill_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("spill-") && n.ends_with(".jsonl"))
        })
        .collect();
    files.sort();
    Ok(files)
}

fn scan_bytes(dir: &Path) -> std::io::Result<u64> {
    Ok(spill_files(dir)?
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum())
}

/// Reads a spill file back.
pub fn read(path: &Path) -> std::io::Result<Vec<Pending>> {
    let mut out = Vec::new();
    for line in BufReader::new(File::open(path)?).lines() {
        let line = line?;
        // The body holds no raw tab: the fields after it are the trace's.
        let mut parts = line.split('\t');
        let (t, id, body) = (parts.next(), parts.next(), parts.next());
        let (tp, ts) = (parts.next(), parts.next());
        match (t, id, body) {
            (Some(t), Some(id), Some(body))
                if serde_json::from_str::<serde_json::Value>(body).is_ok() =>
            {
                let trace = tp.filter(|tp| !tp.is_empty()).map(|tp| {
                    hookfleet_core::trace::Headers::new(Some(tp), ts.filter(|s| !s.is_empty()))
                });
                out.push(Pending {
                    event_type: t.to_owned(),
                    id: id.to_owned(),
                    body: body.as_bytes().to_vec(),
                    trace,
                })
            }
            _ => tracing::warn!(file = %path.display(), "Skipping a torn spill line."),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(i: u32) -> Pending {
        Pending {
            event_type: "user.created".into(),
            id: format!("evt_{i:04}"),
            body: format!(r#"{{"id":"evt_{i:04}","note":"a\tb"}}"#)
                .replace('\t', "\\t")
                .into_bytes(),
            trace: None,
        }
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hf-spill-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn gauge() -> IntGauge {
        IntGauge::new("spill_bytes", "test").unwrap()
    }

    fn on_disk(dir: &Path) -> u64 {
        spill_files(dir)
            .unwrap()
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .sum()
    }

    #[test]
    fn append_take_read_round_trip() {
        let dir = temp_dir("round-trip");
        let s = Spill::open(&dir, u64::MAX, gauge()).unwrap();
        assert_eq!(s.append(&[ev(1), ev(2)]), 2);
        assert_eq!(s.append(&[ev(3)]), 1);
        let files = s.take_files().unwrap();
        assert_eq!(files.len(), 1);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&files[0])
            .unwrap()
            .write_all(b"user.created\tevt_4\t{\"torn")
            .unwrap();
        let back = read(&files[0]).unwrap();
        assert_eq!(
            back.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
            ["evt_0001", "evt_0002", "evt_0003"]
        );
        s.append(&[ev(5)]);
        assert_eq!(s.take_files().unwrap().len(), 2, "a new file after take");
        assert!(
            Spill::open(&dir, u64::MAX, gauge()).is_err(),
            "one emitter per spill directory"
        );
        drop(s);
        assert!(
            Spill::open(&dir, u64::MAX, gauge()).is_ok(),
            "free again once the first is gone"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_trace_context_is_kept_with_a_spilled_event() {
        use hookfleet_core::trace::Headers;
        let dir = temp_dir("trace");
        let s = Spill::open(&dir, u64::MAX, gauge()).unwrap();
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut with_state = ev(1);
        with_state.trace = Some(Headers::new(Some(tp), Some("vendor=a,other=b")));
        let mut parent_only = ev(2);
        parent_only.trace = Some(Headers::new(Some(tp), None));
        let mut torn = ev(3);
        torn.trace = Some(Headers::new(Some(tp), Some("a\tb")));
        assert_eq!(s.append(&[with_state, parent_only, ev(4), torn.clone()]), 4);
        let files = s.take_files().unwrap();
        assert_eq!(on_disk(&dir), s.bytes(), "line_len counts the trace fields");
        let back = read(&files[0]).unwrap();
        let traces: Vec<_> = back.iter().map(|p| p.trace.clone()).collect();
        assert_eq!(
            traces,
            [
                Some(Headers::new(Some(tp), Some("vendor=a,other=b"))),
                Some(Headers::new(Some(tp), None)),
                None,
                None, // a tracestate that would tear the line is not written
            ]
        );
        assert_eq!(back[3].body, torn.body, "the event itself is kept");
        // A line of the older three-field format still reads.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&files[0])
            .unwrap()
            .write_all(b"user.created\tevt_old\t{\"id\":\"evt_old\"}\n")
            .unwrap();
        let back = read(&files[0]).unwrap();
        assert_eq!((back[4].id.as_str(), &back[4].trace), ("evt_old", &None));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_spill_stops_at_max_bytes_and_counts_what_it_holds() {
        let dir = temp_dir("cap");
        let line = line_len(&ev(0));
        // Room for 5 lines and a half.
        let cap = line * 5 + line / 2;
        let size = gauge();
        let s = Spill::open(&dir, cap, size.clone()).unwrap();
        assert_eq!(s.append(&[ev(1), ev(2), ev(3)]), 3);
        assert_eq!(
            s.append(&[ev(4), ev(5), ev(6), ev(7)]),
            2,
            "the rest is over the cap"
        );
        assert_eq!(s.append(&[ev(8)]), 0, "full");
        assert_eq!(s.bytes(), line * 5);
        assert_eq!(on_disk(&dir), line * 5, "what it counts is what is on disk");
        assert_eq!(size.get() as u64, line * 5);
        assert!(on_disk(&dir) <= cap);

        // Replayed files free their room.
        for f in s.take_files().unwrap() {
            s.remove(&f).unwrap();
        }
        assert_eq!((s.bytes(), size.get()), (0, 0));
        assert_eq!(s.append(&[ev(9), ev(10)]), 2);
        drop(s);

        // The files of an earlier run count against the cap.
        let s = Spill::open(&dir, cap, size.clone()).unwrap();
        assert_eq!(s.bytes(), line * 2);
        assert_eq!(size.get() as u64, line * 2);
        assert_eq!(s.append(&[ev(11), ev(12), ev(13), ev(14)]), 3);
        assert_eq!(on_disk(&dir), line * 5);
        let ids: Vec<String> = s
            .take_files()
            .unwrap()
            .iter()
            .flat_map(|f| read(f).unwrap())
            .map(|p| p.id)
            .collect();
        assert_eq!(
            ids,
            ["evt_0009", "evt_0010", "evt_0011", "evt_0012", "evt_0013"],
            "kept in order, none torn"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
