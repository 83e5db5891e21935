//! `hookfleet emit`: publishes events with confirms (see [`hookfleet::emit`]).
use anyhow::Context as _;
use hookfleet_core::Settings;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Emit {
    /// Event type, e.g. match.found; with --file, the type of lines that name none.
    #[arg(required_unless_present = "file")]
    event_type: Option<String>,
    /// The event's data: a JSON object.
    #[arg(long, required_unless_present = "file", conflicts_with = "file")]
    data: Option<String>,
    /// A JSON Lines file of events (`-` for stdin).
    #[arg(long)]
    file: Option<PathBuf>,
    /// The tenant of the event (with --file: of lines that name none).
    #[arg(long)]
    tenant: Option<String>,
}

pub async fn run(args: Emit, settings: &Settings) -> anyhow::Result<()> {
    let tenant = args.tenant.as_deref();
    let events = match (&args.file, args.data) {
        (Some(path), _) => {
            hookfleet::emit::from_lines(&read_file(path)?, args.event_type.as_deref(), tenant)?
        }
        (None, Some(data)) => {
            let data: serde_json::Value =
                serde_json::from_str(&data).context("--data is not valid JSON")?;
            let event_type = args.event_type.context("TYPE is required with --data")?;
            vec![hookfleet::emit::envelope(&event_type, data, tenant)?]
        }
        (None, None) => anyhow::bail!("give TYPE --data '{{…}}', or --file"),
    };
    for chunk in events.chunks(1000) {
        hookfleet::emit::publish(&settings.amqp.target, chunk).await?;
        for ev in chunk {
            out!("{}", ev.2);
        }
    }
    Ok(())
}

/// `--file`: a path, or `-` for stdin.
fn read_file(path: &Path) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading stdin")
    } else {
        std::fs::read_to_string(path).with_context(|| format!("--file {}", path.display()))
    }
}
