//! Where the CPU of a scenario goes: utime + stime from `/proc/<pid>/stat` of
//! every process of each hop, sampled before, during (every 200 ms) and after.
//!
//! - **hookfleet**: the processes the scenario started, and their children
//!   (the role a profiling wrapper runs), or this process for the SDK.
//! - **RabbitMQ**: every `beam.smp` on the machine (there is one node).
//! - **PostgreSQL**: the backends of the scenario's own database (hookfleet's
//!   pool and LISTEN connections, autovacuum workers; not the bench's own
//!   connection) plus the server's background processes (walwriter,
//!   checkpointer, …, which every database shares) and the postmaster. Backends
//!   are found through `pg_stat_activity` at each sample: one that starts and
//!   exits between two samples is missed, and one that exits loses at most its
//!   last 200 ms. The server-wide figure (`postgres_server_ms`) is exact instead
//!   (every postgres process, plus the postmaster's `cutime`/`cstime`, where the
//!   kernel adds the CPU of the children it reaped) but counts every database,
//!   other users' too.
//!
//! The machine is shared, so RabbitMQ's and the background processes' figures
//! include whatever else uses them meanwhile; `other_pct` says how busy the
//! machine was outside the measured processes.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Clock ticks per second of `/proc` times (`getconf CLK_TCK`; 100 on Linux).
fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Fields of `/proc/<pid>/stat` after the command name: (utime + stime,
/// cutime + cstime, start time, parent pid), in ticks.
fn stat(pid: u32) -> Option<(u64, u64, u64, u32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: split after it.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): utime is field 14, so f[11].
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    Some((
        n(11)? + n(12)?,
        n(13)? + n(14)?,
        n(19)?,
        n(1)?.try_into().ok()?,
    ))
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn pids_named(name: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| comm(p) == name)
        .collect()
}

/// The children of `pid`'s main thread.
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Busy and total ticks of the whole machine (`/proc/stat`, first line).
fn machine() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = s
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// Seconds since boot, in ticks (process start times are in these units).
fn now_ticks(tck: f64) -> u64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map(|s| (s * tck) as u64)
        .unwrap_or(0)
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Hop {
    Hookfleet,
    Rabbitmq,
    Postgres,
}

/// CPU milliseconds per delivery (or per accepted event) of one scenario.
#[derive(serde::Serialize, Clone, Debug, Default)]
pub struct Split {
    pub hookfleet_ms: f64,
    pub rabbitmq_ms: f64,
    pub postgres_ms: f64,
    pub total_ms: f64,
    /// Every postgres process of the server, all databases (see the module doc).
    pub postgres_server_ms: f64,
    /// The bench itself: producer, load generator, receiver.
    pub bench_ms: f64,
    /// Share of the machine busy outside the processes above, in %.
    pub other_pct: f64,
}

impl Split {
    /// `hf / mq / pg = total`, for the table.
    pub fn cell(&self) -> String {
        format!(
            "{:.3} / {:.3} / {:.3} = **{:.3}**",
            self.hookfleet_ms, self.rabbitmq_ms, self.postgres_ms, self.total_ms
        )
    }
}

struct Seen {
    hop: Hop,
    base: u64,
    last: u64,
}

struct State {
    tck: f64,
    start_ticks: u64,
    hookfleet: Vec<u32>,
    seen: HashMap<u32, Seen>,
    /// Server-wide: every postgres process's ticks, and the postmaster's reaped children.
    server_base: HashMap<u32, u64>,
    server_last: HashMap<u32, u64>,
    reaped_base: u64,
    reaped_last: u64,
    postmaster: Option<u32>,
    self_base: u64,
    machine_base: (u64, u64),
}

impl State {
    fn note(&mut self, pid: u32, hop: Hop) {
        let Some((ticks, _, started, _)) = stat(pid) else {
            return;
        };
        let start_ticks = self.start_ticks;
        let e = self.seen.entry(pid).or_insert(Seen {
            hop,
            // A process born during the scenario spent all its CPU in it.
            base: if started >= start_ticks { 0 } else { ticks },
            last: ticks,
        });
        e.last = e.last.max(ticks);
    }

    fn server(&mut self) {
        for pid in pids_named("postgres") {
            let Some((ticks, reaped, started, ppid)) = stat(pid) else {
                continue;
            };
            if comm(ppid) != "postgres" {
                self.postmaster = Some(pid);
                self.reaped_last = reaped;
            }
            let start_ticks = self.start_ticks;
            self.server_base
                .entry(pid)
                .or_insert(if started >= start_ticks { 0 } else { ticks });
            self.server_last.insert(pid, ticks);
        }
    }
}

/// Samples the processes of one scenario until [`Tracker::finish`].
pub struct Tracker {
    state: Arc<Mutex<State>>,
    db: Arc<tokio_postgres::Client>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Tracker {
    /// Starts measuring now: `hookfleet` are the pids of the hookfleet hop,
    /// `db_url` the scenario's database.
    pub async fn start(hookfleet: &[u32], db_url: &str) -> anyhow::Result<Tracker> {
        let (c, conn) = tokio_postgres::connect(db_url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        let tck = clk_tck();
        let mut st = State {
            tck,
            start_ticks: now_ticks(tck),
            hookfleet: hookfleet.to_vec(),
            seen: HashMap::new(),
            server_base: HashMap::new(),
            server_last: HashMap::new(),
            reaped_base: 0,
            reaped_last: 0,
            postmaster: None,
            self_base: stat(std::process::id()).map_or(0, |s| s.0),
            machine_base: machine(),
        };
        // Everything alive now counts from now, including what started before.
        st.start_ticks = u64::MAX;
        st.server();
        st.reaped_base = st.reaped_last;
        let state = Arc::new(Mutex::new(st));
        let db = Arc::new(c);
        sample(&state, &db).await;
        state.lock().unwrap().start_ticks = now_ticks(tck);
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let (s2, d2) = (state.clone(), db.clone());
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stopped.changed() => return,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => sample(&s2, &d2).await,
                }
            }
        });
        Ok(Tracker {
            state,
            db,
            stop,
            task,
        })
    }

    /// Counts `pid` in the hookfleet hop from now on (a process started later).
    pub fn add_hookfleet(&self, pid: u32) {
        self.state.lock().unwrap().hookfleet.push(pid);
    }

    /// The last sample, divided over `n` deliveries.
    pub async fn finish(self, n: u64) -> Split {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        sample(&self.state, &self.db).await;
        let st = self.state.lock().unwrap();
        let secs = |t: u64| t as f64 / st.tck;
        let mut hop = HashMap::<Hop, u64>::new();
        for s in st.seen.values() {
            *hop.entry(s.hop).or_default() += s.last.saturating_sub(s.base);
        }
        let server: u64 = st
            .server_last
            .iter()
            .map(|(p, t)| t.saturating_sub(st.server_base.get(p).copied().unwrap_or(0)))
            .sum::<u64>()
            + st.reaped_last.saturating_sub(st.reaped_base);
        // When the hookfleet hop is this process (the SDK), it is not counted twice.
        let bench = if st.hookfleet.contains(&std::process::id()) {
            0
        } else {
            stat(std::process::id()).map_or(0, |s| s.0) - st.self_base
        };
        let (busy, total) = machine();
        let (busy, total) = (busy - st.machine_base.0, total - st.machine_base.1);
        let measured = hop.get(&Hop::Hookfleet).copied().unwrap_or(0)
            + hop.get(&Hop::Rabbitmq).copied().unwrap_or(0)
            + server
            + bench;
        let per = |t: u64| secs(t) * 1000.0 / n.max(1) as f64;
        let get = |h: Hop| per(hop.get(&h).copied().unwrap_or(0));
        let (hf, mq, pg) = (get(Hop::Hookfleet), get(Hop::Rabbitmq), get(Hop::Postgres));
        Split {
            hookfleet_ms: hf,
            rabbitmq_ms: mq,
            postgres_ms: pg,
            total_ms: hf + mq + pg,
            postgres_server_ms: per(server),
            bench_ms: per(bench),
            other_pct: 100.0 * busy.saturating_sub(measured) as f64 / total.max(1) as f64,
        }
    }
}

/// One sample of every process of every hop.
async fn sample(state: &Mutex<State>, db: &tokio_postgres::Client) {
    // The scenario database's backends and the server's background processes,
    // not this connection's backend.
    let pg: Vec<u32> = db
        .query(
            "SELECT pid FROM pg_stat_activity
              WHERE pid <> pg_backend_pid() AND (datname = current_database() OR datname IS NULL)",
            &[],
        )
        .await
        .map(|rows| {
            rows.iter()
                .filter_map(|r| u32::try_from(r.get::<_, i32>(0)).ok())
                .collect()
        })
        .unwrap_or_default();
    let beam = pids_named("beam.smp");
    let mut st = state.lock().unwrap();
    for pid in st.hookfleet.clone() {
        st.note(pid, Hop::Hookfleet);
        // A wrapper's role (scripts/profile.sh), not the profiler itself.
        for child in children(pid) {
            if comm(child) != "perf" {
                st.note(child, Hop::Hookfleet);
            }
        }
    }
    for pid in beam {
        st.note(pid, Hop::Rabbitmq);
    }
    for pid in pg {
        st.note(pid, Hop::Postgres);
    }
    if let Some(pm) = st.postmaster {
        st.note(pm, Hop::Postgres);
    }
    st.server();
}
