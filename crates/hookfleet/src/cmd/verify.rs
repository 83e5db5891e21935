//! `hookfleet verify`: checks a captured delivery (see [`hookfleet::verify`]).
//! It loads no configuration.
use super::SecretArg;
use anyhow::Context as _;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Verify {
    #[command(flatten)]
    secret: SecretArg,
    /// The webhook-id header.
    #[arg(long)]
    id: String,
    /// The webhook-timestamp header.
    #[arg(long)]
    timestamp: String,
    /// The webhook-signature header (all of it: `v1,… v1,…`).
    #[arg(long)]
    signature: String,
    /// Accepted clock difference, in seconds (Standard Webhooks: 300).
    #[arg(long, default_value_t = 300)]
    tolerance: i64,
    /// The body, if not on stdin.
    #[arg(long)]
    body: Option<PathBuf>,
}

pub fn run(args: Verify) -> anyhow::Result<()> {
    let secret = args.secret.required()?;
    let bytes = match &args.body {
        Some(p) => std::fs::read(p).with_context(|| format!("--body {}", p.display()))?,
        None => {
            use std::io::Read as _;
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("reading the body from stdin")?;
            bytes
        }
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let c = hookfleet::verify::Captured {
        id: &args.id,
        timestamp: &args.timestamp,
        signature: &args.signature,
        body: &bytes,
    };
    match hookfleet::verify::check(&secret, &c, now, args.tolerance) {
        Ok(v) => {
            out!(
                "signature OK: entry {} of {} matches; signed {} s ago (tolerance {} s)",
                v.matched,
                v.entries,
                v.age_secs,
                args.tolerance
            );
            Ok(())
        }
        Err(e) => anyhow::bail!("signature FAILED: {e}"),
    }
}
