//! The spill directory's bound (`max_spill_bytes`): with the broker out of
//! reach, events fill the spill up to the bound and the rest are dropped,
//! counted and logged; the directory never holds more than the bound.
//! (Alone in its file: it installs the process's tracing subscriber.)
#![allow(clippy::unwrap_used)]
use hookfleet_emit::{Emitter, EmitterConfig};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where the test's log lines go.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn spill_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".jsonl"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

#[test]
fn past_max_spill_bytes_events_are_dropped_counted_and_logged() {
    let log = Log::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();
    // A port nothing listens on: the broker is out of reach.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("hf-spill-cap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    const CAP: u64 = 4000;
    let e = Emitter::connect(EmitterConfig {
        amqp_url: format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
        spill_dir: dir.clone(),
        buffer: 10,
        max_spill_bytes: CAP,
        ..Default::default()
    })
    .unwrap();
    for i in 0..200 {
        e.emit_user_created(i, "ada", Some("ada@example.com"), Some("acme"));
    }
    let m = e.metrics().clone();
    let end = Instant::now() + Duration::from_secs(60);
    while m.spilled.get() + m.dropped.get() < 200 {
        assert!(Instant::now() < end, "every event spilled or dropped");
        std::thread::sleep(Duration::from_millis(10));
    }
    let (spilled, dropped) = (m.spilled.get(), m.dropped.get());
    assert_eq!(spilled + dropped, 200);
    assert!(spilled > 10, "the spill took what fit: {spilled}");
    assert!(dropped > 100, "the rest was dropped: {dropped}");
    let on_disk = spill_size(&dir);
    assert!(on_disk <= CAP, "{on_disk} bytes on disk, bound {CAP}");
    assert!(on_disk > CAP - 300, "filled up to the bound: {on_disk}");
    assert_eq!(
        m.spill_bytes.get() as u64,
        on_disk,
        "the gauge is what is on disk"
    );

    // Exported with the counters.
    let registry = prometheus::Registry::new();
    m.register(&registry).unwrap();
    let names: Vec<String> = registry
        .gather()
        .iter()
        .map(|f| f.name().to_owned())
        .collect();
    assert!(
        names.contains(&"hookfleet_emit_spill_bytes".to_owned()),
        "{names:?}"
    );
    assert!(names.contains(&"hookfleet_emit_dropped_total".to_owned()));

    // Logged as an error naming the bound, at most once a second.
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("the spill directory is full"))
        .collect();
    assert!(!lines.is_empty(), "a drop is logged: {text}");
    assert!(lines
        .iter()
        .all(|l| l.contains("ERROR") && l.contains("max_spill_bytes = 4000")));
    assert!(lines.len() <= 3, "not one line per event: {text}");

    assert!(
        !e.shutdown(Duration::from_millis(100)),
        "the spilled events are not confirmed"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
