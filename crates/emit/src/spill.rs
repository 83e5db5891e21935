//! The spill: append-only files of events that could not be buffered or
//! published. One line per event, `<type>\t<id>\t<body>` (the JSON body never
//! holds a raw tab or newline). Each append is written through to the OS, so a
//! killed producer loses nothing it spilled; a torn last line is skipped on replay.
use crate::Pending;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

pub struct Spill {
    dir: PathBuf,
    active: Mutex<Option<BufWriter<File>>>,
    seq: AtomicU64,
    /// Held for the life of the emitter: one producer process per spill directory
    /// (another one replaying our active file would lose what we append after).
    _lock: File,
}

impl Spill {
    pub fn open(dir: &Path) -> std::io::Result<Spill> {
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
        Ok(Spill {
            dir: dir.to_owned(),
            active: Mutex::new(None),
            seq: AtomicU64::new(0),
            _lock: lock,
        })
    }

    /// Appends events to the active spill file (creating one when needed).
    pub fn append(&self, events: &[Pending]) -> std::io::Result<()> {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        if active.is_none() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let name = format!(
                "spill-{nanos:020}-{}-{}.jsonl",
                std::process::id(),
                self.seq.fetch_add(1, Ordering::Relaxed)
            );
            *active = Some(BufWriter::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.join(name))?,
            ));
        }
        let Some(w) = active.as_mut() else {
            return Ok(());
        };
        for e in events {
            w.write_all(e.event_type.as_bytes())?;
            w.write_all(b"\t")?;
            w.write_all(e.id.as_bytes())?;
            w.write_all(b"\t")?;
            w.write_all(&e.body)?;
            w.write_all(b"\n")?;
        }
        w.flush()
    }

    /// Closes the active file and returns every spill file, oldest first (also
    /// those left by an earlier run of the producer).
    pub fn take_files(&self) -> std::io::Result<Vec<PathBuf>> {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mut w) = active.take() {
            w.flush()?;
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)?
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
}

/// Reads a spill file back.
pub fn read(path: &Path) -> std::io::Result<Vec<Pending>> {
    let mut out = Vec::new();
    for line in BufReader::new(File::open(path)?).lines() {
        let line = line?;
        let mut parts = line.splitn(3, '\t');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(t), Some(id), Some(body))
                if serde_json::from_str::<serde_json::Value>(body).is_ok() =>
            {
                out.push(Pending {
                    event_type: t.to_owned(),
                    id: id.to_owned(),
                    body: body.as_bytes().to_vec(),
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

    #[test]
    fn append_take_read_round_trip() {
        let dir = std::env::temp_dir().join(format!("hf-spill-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let s = Spill::open(&dir).unwrap();
        let ev = |i: u32| Pending {
            event_type: "user.created".into(),
            id: format!("evt_{i}"),
            body: format!(r#"{{"id":"evt_{i}","note":"a\tb"}}"#)
                .replace('\t', "\\t")
                .into_bytes(),
        };
        s.append(&[ev(1), ev(2)]).unwrap();
        s.append(&[ev(3)]).unwrap();
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
            ["evt_1", "evt_2", "evt_3"]
        );
        s.append(&[ev(5)]).unwrap();
        assert_eq!(s.take_files().unwrap().len(), 2, "a new file after take");
        assert!(
            Spill::open(&dir).is_err(),
            "one emitter per spill directory"
        );
        drop(s);
        assert!(
            Spill::open(&dir).is_ok(),
            "free again once the first is gone"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
