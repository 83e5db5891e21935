//! `hookfleet listen`: the local receiver (see [`hookfleet::listen`]). It loads
//! no configuration.
use super::{shutdown_on_signal, SecretArg};
use anyhow::Context as _;

#[derive(clap::Args)]
pub struct Listen {
    #[arg(long, default_value_t = 9000)]
    port: u16,
    /// To verify signatures.
    #[command(flatten)]
    secret: SecretArg,
    /// Answer 500 to the first N requests.
    #[arg(long, default_value_t = 0)]
    fail: u64,
    /// Answer this status to every request.
    #[arg(long)]
    status: Option<u16>,
}

pub async fn run(args: Listen) -> anyhow::Result<()> {
    let secret = args.secret.resolve()?;
    let l = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .with_context(|| format!("binding 127.0.0.1:{}", args.port))?;
    // The bound port: `--port 0` picks a free one.
    let port = l.local_addr().map_or(args.port, |a| a.port());
    eprintln!("listening on http://127.0.0.1:{port}/");
    hookfleet::listen::serve(
        l,
        hookfleet::listen::ListenOptions {
            secret,
            fail: args.fail,
            status: args.status,
        },
        shutdown_on_signal(),
    )
    .await
}
